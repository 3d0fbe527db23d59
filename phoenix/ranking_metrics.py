"""Leave-one-out ranking metrics: HR@K, NDCG@K and MRR of one held-out item per test case, ranked
against every corpus item except the user's history (the sequential-recommendation protocol)."""

from __future__ import annotations

import numpy as np


def target_ranks(scores: np.ndarray, target: np.ndarray, exclude: list[np.ndarray]) -> np.ndarray:
    """1-based rank of `target[u]` among the columns of `scores[u]` ([U, N], higher = first) with the
    columns `exclude[u]` removed (the target itself is never removed). Ties count against the
    target (a constant scorer ranks it last), so no scorer gains from ties."""
    ranks = np.empty(len(target), dtype=np.int64)
    for u in range(len(target)):
        s = scores[u]
        t = int(target[u])
        ahead = s >= s[t]
        ahead[t] = False
        ex = np.asarray(exclude[u], dtype=np.int64)
        if len(ex):
            ex = ex[ex != t]
            ahead[ex] = False
        ranks[u] = 1 + int(ahead.sum())
    return ranks


def rank_metrics(ranks: np.ndarray, ks: tuple[int, ...] = (10,)) -> dict[str, float]:
    """HR@k = share of targets ranked <= k; NDCG@k = mean 1/log2(rank + 1) over those (one relevant
    item: IDCG = 1); MRR = mean 1/rank over the full ranking."""
    r = np.asarray(ranks, dtype=np.float64)
    if len(r) == 0:
        return {
            **{f"hr@{k}": float("nan") for k in ks},
            **{f"ndcg@{k}": float("nan") for k in ks},
            "mrr": float("nan"),
        }
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = float((r <= k).mean())
    for k in ks:
        out[f"ndcg@{k}"] = float(np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0).mean())
    out["mrr"] = float((1.0 / r).mean())
    return out
