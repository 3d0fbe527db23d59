"""The held-out window a retrain compares ranker checkpoints on, and the compact metrics the gate
reads: per-action ROC-AUC and the feed's weighted-score ranking metrics.

Every checkpoint is scored on the same impressions (the newest `eval_fraction` of the log by time —
exactly the split `train_ranker` holds out — or a later log directory), with the same request
grouping; only the checkpoint's own model config (hash sizes, SID rows, history length) differs.
The weights of the weighted score belong to the feed (home_mixer), so the caller passes them in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from phoenix.log_dir import resolve_logs, sids_source
from phoenix.ranker.checkpoint import load_model
from phoenix.ranker.config import DWELL_CAP_S, NUM_ACTIONS
from phoenix.ranker.data import (
    ImpressionTable,
    Requests,
    build_requests,
    impressions_from_log,
    make_batch,
    read_log,
    with_history_context,
)
from phoenix.ranker.evaluate import MIN_POSITIVES, action_name, predict_requests, request_ids
from phoenix.ranker.features import action_multi_hot
from phoenix.ranker.metrics import ndcg, roc_auc
from phoenix.ranker.model import RankerModel
from phoenix.ranker.sids import SidLookup


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    """The weighted score: Σ actions[a] · P(a) + dwell_s · predicted dwell seconds (ActionName a)."""

    actions: Mapping[int, float] = field(default_factory=dict)
    dwell_s: float = 0.0

    def vector(self) -> np.ndarray:
        w = np.zeros(NUM_ACTIONS, dtype=np.float64)
        for a, v in self.actions.items():
            w[int(a)] = float(v)
        return w


@dataclass(frozen=True)
class EvalWindow:
    impressions: pl.DataFrame  # impressions_from_log of the whole input
    split_ms: float  # impressions at or after this time are held out
    sids: SidLookup | None
    max_candidates: int
    session_gap_ms: int
    description: dict[str, Any]  # the data window, for the registry manifest


def _window_sids(paths: list[Path], sids_path: str) -> SidLookup | None:
    """`sids_path`, else the posts tables (with SIDs) of the log directories, merged."""
    if sids_path:
        return SidLookup.from_parquet(sids_path)
    frames = [
        pl.read_parquet(src, columns=["post_id", "sid"]) for p in paths if (src := sids_source(p)) is not None
    ]
    if not frames:
        return None
    return SidLookup.from_frame(pl.concat(frames).unique("post_id", keep="last", maintain_order=True))


def _span(ts: np.ndarray) -> tuple[int | None, int | None]:
    return (int(ts.min()), int(ts.max())) if len(ts) else (None, None)


def build_window(
    logs_path: str | Path,
    eval_logs: str | Path | None = None,
    eval_fraction: float = 0.15,
    sids_path: str = "",
    max_candidates: int = 32,
    session_gap_ms: int = 60 * 60_000,
) -> EvalWindow:
    """Without `eval_logs`: the newest `eval_fraction` of `logs_path`'s impressions (the split
    train_ranker holds out with the same fraction). With `eval_logs`: every impression of that
    later log, whose histories may reach back into `logs_path`; the two must not overlap in time.
    The training log's history file (if any) joins as history context."""
    train_log = read_log(resolve_logs(logs_path).engagements)
    if eval_logs is None:
        if not 0.0 < eval_fraction < 1.0:
            raise ValueError("eval_fraction must be in (0, 1) when no eval logs are given")
        imp = impressions_from_log(train_log)
        ts = imp["timestamp_ms"].to_numpy()
        if len(ts) == 0:
            raise ValueError(f"{logs_path}: no impressions")
        split = float(np.quantile(ts, 1.0 - eval_fraction))  # = ImpressionTable.build's split
    else:
        eval_log = read_log(resolve_logs(eval_logs).engagements)
        eval_ts = impressions_from_log(eval_log)["timestamp_ms"].to_numpy()
        train_ts = impressions_from_log(train_log)["timestamp_ms"].to_numpy()
        if len(eval_ts) == 0:
            raise ValueError(f"{eval_logs}: no impressions")
        split = float(eval_ts.min())
        if len(train_ts) and train_ts.max() >= split:
            raise ValueError(
                f"{eval_logs} must be later than {logs_path}: its first impression ({int(split)}) is "
                f"not after the training log's last ({int(train_ts.max())})"
            )
        imp = impressions_from_log(pl.concat([train_log, eval_log]))
        ts = imp["timestamp_ms"].to_numpy()
    held = ts >= split
    (t0, t1), (e0, e1) = _span(ts[~held]), _span(ts[held])
    imp = with_history_context(imp, resolve_logs(logs_path).history)  # history context only
    description = {
        "logs": str(Path(logs_path).resolve()),
        "eval_logs": None if eval_logs is None else str(Path(eval_logs).resolve()),
        "eval_fraction": None if eval_logs is not None else eval_fraction,
        "split_ms": split,
        "train_start_ms": t0,
        "train_end_ms": t1,
        "train_impressions": int((~held).sum()),
        "eval_start_ms": e0,
        "eval_end_ms": e1,
        "eval_impressions": int(held.sum()),
    }
    paths = [Path(logs_path)] + ([] if eval_logs is None else [Path(eval_logs)])
    return EvalWindow(imp, split, _window_sids(paths, sids_path), max_candidates, session_gap_ms, description)


def score_checkpoint(model_dir: str | Path, window: EvalWindow, weights: ScoreWeights) -> dict[str, Any]:
    """Compact metrics of a ranker checkpoint on the window's held-out impressions: `auc` and
    `positives` per action (≥ MIN_POSITIVES positives), and the weighted score (the feed's ranking
    order) against the realised value of each impression, Σ weights · observed actions + dwell_s ·
    observed dwell: `weighted_ndcg` (per request, gain = max(value, 0)) and `weighted_auc`
    (label = value > 0)."""
    model, meta = load_model(model_dir)
    cfg = model.cfg
    t = ImpressionTable.build(window.impressions, cfg.hash_config, 0.0, window.sids, cfg)
    t.is_eval = (t.timestamp_ms >= window.split_ms) & ~t.is_context
    req = build_requests(t, cfg.history_len, window.max_candidates, window.session_gap_ms)
    eval_req = req.subset(req.is_eval)
    idx, probs, dwell = predict_requests(model, t, eval_req)
    if len(idx) == 0:
        raise ValueError("the evaluation window holds no impressions")
    order = np.argsort(idx)
    idx, probs, dwell = idx[order], probs[order].astype(np.float64), dwell[order].astype(np.float64)
    y = action_multi_hot(t.action_mask[idx]).astype(np.float64)
    groups = request_ids(eval_req, len(t))[idx]
    auc: dict[str, float | None] = {}
    positives: dict[str, int] = {}
    for a in range(NUM_ACTIONS):
        n = int(y[:, a].sum())
        if n >= MIN_POSITIVES and n < len(y):
            v = roc_auc(y[:, a], probs[:, a])
            auc[action_name(a)] = None if np.isnan(v) else v
            positives[action_name(a)] = n
    w = weights.vector()
    score = probs @ w + weights.dwell_s * dwell
    value = y @ w + weights.dwell_s * np.clip(t.dwell_ms[idx] / 1000.0, 0.0, DWELL_CAP_S)
    w_ndcg = ndcg(np.maximum(value, 0.0), score, groups)
    w_auc = roc_auc(value > 0, score)
    gain = np.zeros(len(t))
    gain[idx] = np.maximum(value, 0.0)
    w_ndcg_neg = ndcg_with_unserved(model, t, eval_req, gain, weights)
    return {
        "model_version": meta["model_version"],
        "eval_impressions": len(idx),
        "eval_requests": len(eval_req),
        "auc": auc,
        "positives": positives,
        "weighted_ndcg": None if np.isnan(w_ndcg) else w_ndcg,
        "weighted_auc": None if np.isnan(w_auc) else w_auc,
        "weighted_ndcg_neg": None if np.isnan(w_ndcg_neg) else w_ndcg_neg,
        "weighted_positives": int((value > 0).sum()),
    }


def ndcg_with_unserved(
    model: RankerModel,
    t: ImpressionTable,
    req: Requests,
    gain: np.ndarray,
    weights: ScoreWeights,
    batch_size: int = 64,
    seed: int = 0,
) -> float:
    """Weighted NDCG of each request's impressions ranked together with the impressions of another
    user's request (in the same batch), which this user was not served: gain 0. A log holds only
    what the logging model chose, so within-request metrics cannot see a candidate that has lost
    the contrast between those picks and the rest of the corpus; these negatives can. Candidate
    isolation scores each candidate independently of the others, so a negative's score is what
    the model would give it in this user's feed. The pairing depends only on the requests and
    `seed`: every checkpoint scored on the window gets the same negatives. `gain`: per impression
    of `t`."""
    import torch

    model.eval()
    w = weights.vector()
    order = np.argsort(req.hist_end - req.hist_start, kind="stable")
    gains, scores, groups = [], [], []
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            rows = order[s : s + batch_size]
            tb = make_batch(t, req, rows, np.random.default_rng([seed, s]), in_batch_negatives=True)
            logits, cont = model.forward_fast(tb.batch)
            probs = torch.sigmoid(logits).double().numpy()
            dwell = model.continuous_values(cont)[..., 1].double().numpy()
            score = probs @ w + weights.dwell_s * dwell
            c = tb.cand_index.shape[1] // 2
            real = tb.cand_index[:, :c] >= 0
            neg = tb.label_mask[:, c:, :].numpy().max(-1) > 0
            g = np.zeros(tb.cand_index.shape)
            g[:, :c] = np.where(real, gain[np.maximum(tb.cand_index[:, :c], 0)], 0.0)
            keep = np.concatenate([real, neg], axis=1)
            gains.append(g[keep])
            scores.append(score[keep])
            groups.append(np.broadcast_to((s + np.arange(len(rows)))[:, None], keep.shape)[keep])
    if not gains:
        return float("nan")
    return ndcg(np.concatenate(gains), np.concatenate(scores), np.concatenate(groups))
