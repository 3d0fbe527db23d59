"""numpy helpers shared by the store's hot paths (each one replaces a slower numpy idiom)."""

from __future__ import annotations

import numpy as np


def take(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """arr[idx] for a structured array, copying each element as raw bytes: numpy's structured
    gather goes field by field and is several times slower."""
    return arr.view(f"V{arr.itemsize}")[idx].view(arr.dtype)


def member_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """np.isin for a sorted, de-duplicated set (a binary search instead of a hash build)."""
    if not len(sorted_set):
        return np.zeros(len(values), bool)
    idx = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[idx] == values


def rank_from_newest(seg: np.ndarray) -> np.ndarray:
    """Within each run of equal segment ids (entries oldest first), 0 for the newest entry, 1 for the
    next older, and so on."""
    if not len(seg):
        return seg
    ends = np.flatnonzero(np.r_[seg[1:] != seg[:-1], True])
    lengths = np.diff(np.r_[-1, ends])
    run_end = np.repeat(ends, lengths)
    return run_end - np.arange(len(seg))
