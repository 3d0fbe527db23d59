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


def paired_difference(
    ranks_a: np.ndarray, ranks_b: np.ndarray, k: int = 10, resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """HR@k and NDCG@k of scorer A minus scorer B on the same test cases, with 95% paired-bootstrap
    intervals (cases resampled together): an ablation's effect, far tighter than comparing two
    separate intervals."""
    a, b = np.asarray(ranks_a, np.float64), np.asarray(ranks_b, np.float64)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError("paired ranks must be non-empty and of equal length")
    hit = (a <= k).astype(np.float64) - (b <= k)
    gain = np.where(a <= k, 1.0 / np.log2(a + 1.0), 0.0) - np.where(b <= k, 1.0 / np.log2(b + 1.0), 0.0)
    idx = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    out: dict[str, float] = {}
    for name, d in ((f"hr@{k}", hit), (f"ndcg@{k}", gain)):
        boot = d[idx].mean(1)
        out[name] = float(d.mean())
        out[f"{name}_lo"], out[f"{name}_hi"] = (float(x) for x in np.quantile(boot, [0.025, 0.975]))
    return out
