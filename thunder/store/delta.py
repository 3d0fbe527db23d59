"""The recent entries not yet folded into the snapshot: small per-author Python lists, cheap to
append to under ingest."""

from __future__ import annotations

from itertools import chain

import numpy as np

# list kind ("o" originals, "s" replies + reposts, "v" videos) -> author id -> rows, oldest first
Delta = dict[str, dict[int, list[int]]]
NO_IDS = np.empty(0, np.int64)


def new_delta() -> Delta:
    return {"o": {}, "s": {}, "v": {}}


def delta_hits(
    d: dict[int, list[int]], authors: list[int], positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Recent (unfolded) rows of these followed authors (at these request positions): rows,
    author positions, count per author."""
    if not d:
        return None
    got = list(map(d.get, authors))
    at = [k for k, x in enumerate(got) if x]
    if not at:
        return None
    lists = [x for x in got if x]
    lens = np.fromiter(map(len, lists), np.int64, count=len(lists))
    rows = np.fromiter(chain.from_iterable(lists), np.int64, count=int(lens.sum()))
    return rows, positions[at], lens
