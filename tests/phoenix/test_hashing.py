"""Hash values against the reference formula (Python big ints with explicit int64 wrap-around)."""

from __future__ import annotations

import numpy as np
import pytest

from phoenix.hashing import HASH_CONSTANTS, RESERVED_ROWS, HashConfig, hash_buckets


def _wrap64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _reference(x: int, entity: str, j: int, size: int) -> int:
    scales, biases, modulus = HASH_CONSTANTS[entity]
    if x == 0:
        return 0
    raw = _wrap64(_wrap64(x * scales[j]) + biases[j]) % modulus  # Python % is non-negative here
    return raw % (size - 1) + 1


IDS = [0, 1, 42, 7_777, 2_078_752_413_891_690_497, -5, 9_223_372_036_854_775_807, -(2**63)]


@pytest.mark.parametrize("entity", ["user", "post", "author", "ip"])
@pytest.mark.parametrize("size", [100_000, 30_000, 7])
def test_hash_matches_reference_formula(entity: str, size: int) -> None:
    got = hash_buckets(np.array(IDS, dtype=np.int64), entity, size)
    want = [[_reference(x, entity, j, size) for j in range(2)] for x in IDS]
    assert got.tolist() == want


def test_known_values() -> None:
    # Worked by hand: (1 * 196742702 + 1935840681) % 2859568897 = 2132583383; % 99999 + 1 = 4710.
    assert hash_buckets([1], "user", 100_000).tolist() == [[4710, 35698]]
    # A snowflake id overflows int64 when multiplied: the wrap-around is part of the formula.
    assert hash_buckets([2_078_752_413_891_690_497], "post", 100_000).tolist() == [[37401, 28371]]


def test_padding_and_range_and_shape() -> None:
    ids = np.random.default_rng(0).integers(-(2**62), 2**62, size=(3, 50))
    ids[0, :5] = 0
    b = hash_buckets(ids, "post", 1000)
    assert b.shape == (3, 50, 2)
    assert (b[0, :5] == 0).all()
    assert (b[ids != 0] >= 1).all() and (b < 1000).all()


def test_placeholder_rules_for_empty_tables() -> None:
    assert hash_buckets([0, 5], "user", 0).tolist() == [[0, 0], [1, 0]]
    assert hash_buckets([0, 5], "ip", 0).tolist() == [[0, 0], [0, 0]]


def test_shared_table_rows_use_block_offsets() -> None:
    hc = HashConfig(user_size=10, post_size=20, author_size=30)
    assert hc.num_rows == RESERVED_ROWS + 60
    rows = hc.rows([0, 3], "author")
    assert rows[0].tolist() == [0, 0]
    lo = RESERVED_ROWS + 10 + 20
    assert (rows[1] > lo).all() and (rows[1] < lo + 30).all()
    assert (rows[1] - lo).tolist() == hash_buckets([3], "author", 30)[0].tolist()
    assert HashConfig.from_dict(hc.to_dict()) == hc
