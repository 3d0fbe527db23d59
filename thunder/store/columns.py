"""The store's row-indexed arrays: records, flags column and parent-row column."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thunder.store.records import RECORD, RECORD_FIELDS


@dataclass(slots=True)
class Arrays:
    """Records, flags column and field views; replaced as one object when grown, so a reader that
    reads it once sees arrays of one generation."""

    rec: np.ndarray
    flags: np.ndarray
    parent: np.ndarray
    cols: dict[str, np.ndarray]  # record field views, and "parent_row"

    @classmethod
    def new(cls, n: int) -> Arrays:
        buf = np.zeros(n * RECORD.itemsize + 64, np.uint8)
        skip = -buf.ctypes.data % 64
        rec = buf[skip : skip + n * RECORD.itemsize].view(RECORD)
        parent = np.full(n, -1, np.int64)
        cols = {name: rec[name] for name in RECORD_FIELDS}
        cols["parent_row"] = parent
        return cls(rec, np.zeros(n, np.uint8), parent, cols)

    def grown(self, n: int, used: int) -> Arrays:
        new = Arrays.new(n)
        new.rec[:used] = self.rec[:used]
        new.flags[:used] = self.flags[:used]
        new.parent[:used] = self.parent[:used]
        return new
