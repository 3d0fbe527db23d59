"""Multiplicative id hashing into one shared embedding table: two hashes per id, so two ids share
both rows only rarely.

For id x and hash j: raw = (x * scale_j + bias_j) mod modulus (int64 arithmetic with wrap-around,
Python-style non-negative modulo); bucket = 0 if x == 0 else raw mod (table_size - 1) + 1. The final
row adds the entity's block offset into the shared table (rows 0..64 reserved, row 0 = padding).
Everything is vectorised numpy int64, so the wrap-around matches the reference's numba int64 exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

NUM_HASHES = 2
RESERVED_ROWS = 65  # row 0 = padding, 1..64 reserved (reference: offset_user = 1 + 64)

# (scales, biases, modulus) per entity: fixed, since every trained table depends on them.
HASH_CONSTANTS: dict[str, tuple[tuple[int, int], tuple[int, int], int]] = {
    "user": ((196_742_702, 1_852_108_266), (1_935_840_681, 167_407_236), 2_859_568_897),
    "post": ((2_161_410_491, 1_754_358_832), (1_935_840_681, 167_407_236), 2_361_375_383),
    "author": ((371_965_780, 328_930_218), (139_686_260, 37_755_056), 631_860_353),
    "ip": ((529_482_163, 1_327_604_891), (742_961_053, 318_205_477), 1_073_741_789),
}


def hash_buckets(ids: Any, entity: str, table_size: int) -> np.ndarray:
    """Bucket per hash, shape ids.shape + (2,), int64 in [0, table_size); 0 only for id 0.

    table_size <= 1 follows the reference's placeholder rule: [1, 0] for non-zero ids (user) /
    zeros (ip, or any entity with table size 0 that is not the user)."""
    x = np.asarray(ids, dtype=np.int64)
    out = np.zeros((*x.shape, NUM_HASHES), dtype=np.int64)
    nonzero = x != 0
    if table_size <= 1:
        if entity == "user":
            out[..., 0] = nonzero.astype(np.int64)
        return out
    scales, biases, modulus = HASH_CONSTANTS[entity]
    with np.errstate(over="ignore"):
        for j in range(NUM_HASHES):
            raw = (x * np.int64(scales[j]) + np.int64(biases[j])) % np.int64(modulus)
            out[..., j] = np.where(nonzero, raw % np.int64(table_size - 1) + 1, 0)
    return out


@dataclass(frozen=True, slots=True)
class HashConfig:
    """Table sizes (buckets per entity, including the padding bucket) of the shared embedding table."""

    user_size: int = 100_000
    post_size: int = 100_000
    author_size: int = 30_000

    @property
    def offsets(self) -> dict[str, int]:
        return {
            "user": RESERVED_ROWS,
            "post": RESERVED_ROWS + self.user_size,
            "author": RESERVED_ROWS + self.user_size + self.post_size,
        }

    @property
    def num_rows(self) -> int:
        return RESERVED_ROWS + self.user_size + self.post_size + self.author_size

    def rows(self, ids: Any, entity: str) -> np.ndarray:
        """Shared-table rows, shape ids.shape + (2,); padding (id 0) stays row 0."""
        size = getattr(self, f"{entity}_size")
        b = hash_buckets(ids, entity, size)
        return np.where(b > 0, b + self.offsets[entity], 0)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HashConfig:
        return cls(**{k: int(d[k]) for k in ("user_size", "post_size", "author_size")})
