from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from foryou.core import snowflake as sf


def test_known_id_decodes_to_its_creation_time() -> None:
    # 1212121212121212121 >> 22 = 288992217092 ms after the Twitter epoch
    assert sf.timestamp_ms(1212121212121212121) == 288992217092 + 1288834974657
    assert sf.make_id(1288834974657, 0) == 0


@given(
    ts=st.integers(sf.TWITTER_EPOCH_MS, sf.TWITTER_EPOCH_MS + (1 << 40)), seq=st.integers(0, sf.SEQUENCE_MASK)
)
def test_make_id_round_trips(ts: int, seq: int) -> None:
    i = sf.make_id(ts, seq)
    assert sf.timestamp_ms(i) == ts
    assert i & sf.SEQUENCE_MASK == seq
    assert sf.created_at_secs(i) == ts // 1000


def test_ids_order_by_time_and_vectorised_matches_scalar() -> None:
    ts = np.array([1_700_000_000_000, 1_700_000_000_001, 1_700_000_360_000])
    ids = sf.make_ids(ts, np.array([5, 0, 3]))
    assert list(ids) == [sf.make_id(int(t), s) for t, s in zip(ts, [5, 0, 3], strict=True)]
    assert (np.diff(ids) > 0).all()
    assert list(sf.timestamps_ms(ids)) == list(ts)
    assert sf.age_ms(int(ids[0]), 1_700_000_001_000) == 1000


def test_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        sf.make_id(0)
    with pytest.raises(ValueError):
        sf.make_id(sf.TWITTER_EPOCH_MS, 1 << 22)
