"""Vectorised sampling and grouping helpers shared by the world generator's sections."""

from __future__ import annotations

import numpy as np


def gumbel_topk(logw: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sampling without replacement per row (Gumbel top-k). Returns (row, col) pairs."""
    keys = logw + rng.gumbel(size=logw.shape)
    kmax = int(min(k.max(initial=0), logw.shape[1]))
    if kmax == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    keep = (np.arange(kmax)[None, :] < k[:, None]) & np.isfinite(np.take_along_axis(logw, top, axis=1))
    rows = np.broadcast_to(np.arange(logw.shape[0])[:, None], top.shape)
    return rows[keep].astype(np.int64), top[keep].astype(np.int64)


def row_choice(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column per row, ∝ the row's weights (rows with zero total get column 0)."""
    cum = np.cumsum(weights, axis=1)
    r = rng.random(weights.shape[0]) * cum[:, -1]
    return np.minimum((cum <= r[:, None]).sum(axis=1), weights.shape[1] - 1)


def csr(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group indices by key: (order, start, count) with order[start[k]:start[k]+count[k]] = rows of k."""
    order = np.argsort(keys, kind="stable")
    count = np.bincount(keys, minlength=n)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return order, start, count


def draw_members(
    order: np.ndarray, start: np.ndarray, count: np.ndarray, groups: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """For each entry of `groups`, a uniformly drawn row of that group of a `csr` grouping (one
    `rng.random` value per entry). An empty group yields an arbitrary row: callers mask those out."""
    pick = start[groups] + (rng.random(len(groups)) * count[groups]).astype(np.int64)
    return order[np.minimum(pick, len(order) - 1)]
