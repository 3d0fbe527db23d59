"""Ranking metrics: ROC-AUC, PR-AUC, RCE, calibration, per-request NDCG.
Exact (sort-based) versions, vectorised numpy."""

from __future__ import annotations

import numpy as np

_EPS = 1e-7


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    _, first, counts = np.unique(xs, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(avg, counts)
    return ranks


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _average_ranks(np.asarray(p, dtype=np.float64))
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision: mean of precision@k over the positives, ranked by descending p."""
    y = np.asarray(y).astype(bool)
    if not y.any():
        return float("nan")
    ys = y[np.argsort(-np.asarray(p, dtype=np.float64), kind="mergesort")]
    tp = np.cumsum(ys)
    prec = tp / np.arange(1, len(ys) + 1)
    return float(prec[ys].mean())


def _entropy(q: float) -> float:
    q = min(max(q, _EPS), 1 - _EPS)
    return -(q * np.log(q) + (1 - q) * np.log(1 - q))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def rce(y: np.ndarray, p: np.ndarray) -> float:
    """Relative cross entropy: 100 * (H(positive rate) - CE) / H(positive rate)."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    h = _entropy(float(y.mean()))
    return float(100.0 * (h - log_loss(y, p)) / h)


def calibration(y: np.ndarray, p: np.ndarray) -> float:
    """sum(p) / sum(y): 1 = calibrated, > 1 over-predicts."""
    s = float(np.asarray(y, dtype=np.float64).sum())
    return float(np.asarray(p, dtype=np.float64).sum() / s) if s > 0 else float("nan")


def ndcg(y: np.ndarray, p: np.ndarray, group: np.ndarray) -> float:
    """Mean over groups (requests) with at least one positive of DCG(ranked by p) / ideal DCG."""
    y = np.asarray(y, dtype=np.float64)
    group = np.asarray(group)
    if not (y > 0).any():
        return float("nan")
    _, g = np.unique(group, return_inverse=True)

    def dcg(order: np.ndarray) -> np.ndarray:
        gs, ys = g[order], y[order]
        start = np.r_[0, np.flatnonzero(np.diff(gs)) + 1]
        pos = np.arange(len(gs)) - np.repeat(start, np.diff(np.r_[start, len(gs)]))
        return np.bincount(gs, weights=ys / np.log2(pos + 2.0), minlength=g.max() + 1)

    actual = dcg(np.lexsort((-np.asarray(p, dtype=np.float64), g)))
    ideal = dcg(np.lexsort((-y, g)))
    has = ideal > 0
    return float((actual[has] / ideal[has]).mean())


def action_metrics(y: np.ndarray, p: np.ndarray, group: np.ndarray | None = None) -> dict[str, float]:
    out = {
        "count": int(len(y)),
        "positives": int(np.asarray(y).astype(bool).sum()),
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "rce": rce(y, p),
        "calibration": calibration(y, p),
    }
    if group is not None:
        out["ndcg"] = ndcg(y, p, group)
    return out


def gap_closure(model_auc: float, oracle_auc: float) -> float:
    """(model - 0.5) / (oracle - 0.5): share of the achievable AUC lift the model captures."""
    if not np.isfinite(model_auc) or not np.isfinite(oracle_auc) or oracle_auc <= 0.5:
        return float("nan")
    return float((model_auc - 0.5) / (oracle_auc - 0.5))
