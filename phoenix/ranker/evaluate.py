"""`foryou eval ranker`: per-action ROC-AUC / PR-AUC / RCE / calibration and per-request NDCG on the
held-out (most recent) impressions; when the log directory has an oracle (a simulator can write one)
also the oracle's metrics and the gap closure (model - 0.5) / (oracle - 0.5); the same metrics for
two baselines on the same split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from foryou.core.actions import ACTION_NAMES, short_action_name
from phoenix.holdout import Holdout
from phoenix.log_dir import resolve_logs
from phoenix.ranker.baselines import AuthorPopularityBaseline, FactorizationBaseline
from phoenix.ranker.checkpoint import load_model
from phoenix.ranker.config import TrainConfig
from phoenix.ranker.data import (
    ImpressionTable,
    Requests,
    build_requests,
    impressions_with_history,
    make_batch,
)
from phoenix.ranker.features import action_multi_hot
from phoenix.ranker.metrics import action_metrics, gap_closure, roc_auc
from phoenix.ranker.model import RankerModel
from phoenix.ranker.sids import resolve_sids
from protos import events_pb2

# Headline actions (reported first; the gap-closure / baseline checks use these). Every action key of
# eval.json (per-action tables, gap closure, headline, segments) and of the registry's metrics is
# its one short name in foryou.core.actions (favorite, retweet …); only the world oracle's data
# columns keep the proto enum names (p_SERVER_TWEET_FAV, `oracle_column`).
HEADLINE = {ACTION_NAMES[a]: a for a in (1, 4, 6)}  # favorite, reply, retweet
MIN_POSITIVES = 5  # actions with fewer positives in the eval split are not reported


def action_name(a: int) -> str:
    """The key of ActionName `a` in eval.json and the registry's metrics: its short name."""
    return ACTION_NAMES.get(a, str(a))


def oracle_column(a: int) -> str:
    """The oracle's column of ActionName `a` (world data, e.g. p_SERVER_TWEET_FAV)."""
    return "p_" + events_pb2.ActionName.Name(a)


@torch.inference_mode()
def predict_requests(
    model: RankerModel, t: ImpressionTable, req: Requests, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(impression index [N], probs [N, 64], dwell seconds [N]) for every candidate of `req`."""
    model.eval()
    order = np.argsort(req.hist_end - req.hist_start, kind="stable")  # similar lengths together
    idx_out, p_out, d_out = [], [], []
    for s in range(0, len(order), batch_size):
        tb = make_batch(t, req, order[s : s + batch_size])
        logits, cont = model.forward_fast(tb.batch)
        valid = tb.cand_index >= 0
        idx_out.append(tb.cand_index[valid])
        p_out.append(torch.sigmoid(logits).numpy()[valid])
        d_out.append(model.continuous_values(cont)[..., 1].numpy()[valid])
    if not idx_out:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 64), dtype=np.float32), np.zeros(0, dtype=np.float32)
    return np.concatenate(idx_out), np.concatenate(p_out), np.concatenate(d_out)


def request_ids(req: Requests, n: int) -> np.ndarray:
    """Request index of every impression covered by `req` (-1 elsewhere)."""
    out = np.full(n, -1, dtype=np.int64)
    for r, (s, e) in enumerate(zip(req.cand_start, req.cand_end, strict=True)):
        out[s:e] = r
    return out


def score_table(
    y: np.ndarray, probs: dict[str, np.ndarray], groups: np.ndarray, actions: list[int]
) -> dict[str, dict[str, dict[str, float]]]:
    """{scorer: {action name: metrics}} for probs[scorer] of shape [N, 64]."""
    return {
        name: {action_name(a): action_metrics(y[:, a], p[:, a], groups) for a in actions}
        for name, p in probs.items()
    }


def dwell_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float | None]:
    """The dwell head predicts expected (capped) dwell seconds, 0 for impressions not dwelled:
    RMSE and R² against predicting the eval mean, plus MAE (reference continuous metrics)."""
    if len(true) == 0:
        return {"dwell_rmse_s": None, "dwell_baseline_rmse_s": None, "dwell_r2": None, "dwell_mae_s": None}
    mse = float(np.mean((pred - true) ** 2))
    var = float(np.var(true))
    return {
        "dwell_rmse_s": mse**0.5,
        "dwell_baseline_rmse_s": var**0.5,
        "dwell_r2": 1.0 - mse / var if var > 0 else None,
        "dwell_mae_s": float(np.abs(pred - true).mean()),
    }


def history_ablation(
    model: RankerModel, t: ImpressionTable, eval_req: Requests, idx: np.ndarray
) -> dict[str, float]:
    """Headline ROC-AUCs with every history emptied: equal to the model's own AUCs when the model
    ignores the history (the failure docs/ranker.md diagnoses)."""
    empty = Requests(
        eval_req.cand_start, eval_req.cand_end, eval_req.hist_start, eval_req.hist_start, eval_req.is_eval
    )
    idx0, p0, _ = predict_requests(model, t, empty)
    p0 = p0[np.argsort(idx0)]
    y = action_multi_hot(t.action_mask[idx])
    return {k: float(roc_auc(y[:, a], p0[:, a])) for k, a in HEADLINE.items() if y[:, a].any()}


def eval_segments(
    t: ImpressionTable, eval_req: Requests, idx: np.ndarray, groups: np.ndarray, history_len: int
) -> dict[str, np.ndarray]:
    """Boolean masks over the eval impressions `idx`, each scored separately (an average hides where
    a model fails): by history length (none / short = a newer user / full), by whether the post had
    any training impression (new posts are where post ids know nothing), and by product surface."""
    hist = (eval_req.hist_end - eval_req.hist_start)[groups]
    seen_posts = np.unique(t.post_id[~t.is_eval])
    masks = {
        "history_none": hist == 0,
        "history_short": (hist > 0) & (hist < history_len),
        "history_full": hist >= history_len,
        "post_seen_in_training": np.isin(t.post_id[idx], seen_posts),
    }
    masks["post_new"] = ~masks["post_seen_in_training"]
    surface = t.surface[idx]
    for v in np.unique(surface):
        masks[
            "surface_" + events_pb2.ProductSurface.Name(int(v)).removeprefix("PRODUCT_SURFACE_").lower()
        ] = surface == v
    return masks


def segment_aucs(
    y: np.ndarray, probs: dict[str, np.ndarray], masks: dict[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """{segment: {"impressions": n, headline action: {scorer: ROC-AUC}}} where the segment has at
    least MIN_POSITIVES positives and one negative of that action."""
    out: dict[str, dict[str, Any]] = {}
    for seg, m in masks.items():
        row: dict[str, Any] = {"impressions": int(m.sum())}
        for k, a in HEADLINE.items():
            lab = y[m, a]
            if lab.sum() >= MIN_POSITIVES and (1 - lab).sum() > 0:
                row[k] = {name: float(roc_auc(lab, p[m, a])) for name, p in probs.items()}
        out[seg] = row
    return out


def evaluate_split(
    model: RankerModel,
    t: ImpressionTable,
    req: Requests,
    oracle: pl.DataFrame | None = None,
    baselines: bool = True,
) -> dict[str, Any]:
    eval_req = req.subset(req.is_eval)
    idx, p_model, dwell = predict_requests(model, t, eval_req)
    order = np.argsort(idx)
    idx, p_model, dwell = idx[order], p_model[order], dwell[order]
    y = action_multi_hot(t.action_mask[idx])
    groups = request_ids(eval_req, len(t))[idx]
    actions = [a for a in range(64) if y[:, a].sum() >= MIN_POSITIVES and (1 - y[:, a]).sum() > 0]
    probs: dict[str, np.ndarray] = {"model": p_model}
    if baselines:
        tr = ~t.is_eval
        pop = AuthorPopularityBaseline().fit(t.author_id[tr], t.action_mask[tr])
        probs["author_popularity"] = pop.predict(t.author_id[idx])
        mf = FactorizationBaseline().fit(t.user_id[tr], t.author_id[tr], t.post_id[tr], t.action_mask[tr])
        probs["matrix_factorization"] = mf.predict(t.user_id[idx], t.author_id[idx], t.post_id[idx])
    oracle_actions: list[int] = []
    if oracle is not None:
        keys = pl.DataFrame({"user_id": t.user_id[idx], "post_id": t.post_id[idx]})
        joined = keys.join(oracle, on=["user_id", "post_id"], how="left", maintain_order="left")
        p_or = np.full((len(idx), 64), np.nan, dtype=np.float64)
        for a in actions:
            col = oracle_column(a)
            if col in joined.columns:
                p_or[:, a] = joined[col].to_numpy()
                oracle_actions.append(a)
        if oracle_actions and not np.isnan(p_or[:, oracle_actions]).any():
            probs["oracle"] = p_or
        else:
            oracle_actions = []
    table = score_table(y, {k: v for k, v in probs.items() if k != "oracle"}, groups, actions)
    if oracle_actions:
        table["oracle"] = {
            action_name(a): action_metrics(y[:, a], probs["oracle"][:, a], groups) for a in oracle_actions
        }
    dwell_true = np.clip(t.dwell_ms[idx] / 1000.0, 0, 30)
    out: dict[str, Any] = {
        "eval_impressions": len(idx),
        "eval_requests": len(eval_req),
        "actions": [action_name(a) for a in actions],
        "metrics": table,
        **dwell_metrics(dwell, dwell_true),
    }
    if oracle_actions:
        out["gap_closure"] = {
            action_name(a): gap_closure(
                table["model"][action_name(a)]["roc_auc"], table["oracle"][action_name(a)]["roc_auc"]
            )
            for a in oracle_actions
        }
    out["without_history"] = history_ablation(model, t, eval_req, idx)
    scorers = probs if oracle_actions else {k: v for k, v in probs.items() if k != "oracle"}
    masks = eval_segments(t, eval_req, idx, groups, model.cfg.history_len)
    out["segments"] = segment_aucs(y, scorers, masks)
    out["headline"] = {
        k: {s: table[s][action_name(a)]["roc_auc"] for s in table if action_name(a) in table[s]}
        for k, a in HEADLINE.items()
        if action_name(a) in table["model"]
    }
    return out


def load_split(
    logs_path: str | Path, model: RankerModel, train_cfg: TrainConfig
) -> tuple[ImpressionTable, Requests, pl.DataFrame | None]:
    logs = resolve_logs(logs_path)
    imp = impressions_with_history(logs)
    sids = resolve_sids(logs_path, train_cfg.sids_path)
    holdout = Holdout.resolve(train_cfg.holdout, train_cfg.eval_fraction)
    t = ImpressionTable.build(imp, model.cfg.hash_config, holdout, sids, model.cfg)
    req = build_requests(t, model.cfg.history_len, train_cfg.max_candidates, train_cfg.session_gap_ms)
    oracle = pl.read_parquet(logs.oracle) if logs.oracle is not None else None
    return t, req, oracle


def evaluate_ranker(logs_path: str | Path, model_dir: str | Path, baselines: bool = True) -> dict[str, Any]:
    """Evaluate the checkpoint in `model_dir` on the held-out split of `logs_path` (the split and
    request grouping stored with the checkpoint's training config). Writes eval.json there."""
    model, meta = load_model(model_dir)
    train_cfg = TrainConfig.from_dict(meta.get("train", {}))
    t, req, oracle = load_split(logs_path, model, train_cfg)
    out = evaluate_split(model, t, req, oracle, baselines=baselines)
    out["model_version"] = meta["model_version"]
    (Path(model_dir) / "eval.json").write_text(json.dumps(out, indent=2, default=float))
    return out


def markdown_segments(ev: dict[str, Any], action: str = "favorite") -> str:
    """ROC-AUC of `action` per segment and scorer, as a Markdown table."""
    segs = {k: v for k, v in ev.get("segments", {}).items() if action in v}
    scorers = [
        s for s in ("model", "oracle", "matrix_factorization", "author_popularity") if s in ev["metrics"]
    ]
    rows = [
        f"| segment ({action} ROC-AUC) | impressions | {' | '.join(scorers)} |",
        "|---|---|" + "---|" * len(scorers),
    ]
    for name, v in segs.items():
        cells = " | ".join(f"{v[action][s]:.3f}" if s in v[action] else "" for s in scorers)
        rows.append(f"| {name} | {v['impressions']} | {cells} |")
    return "\n".join(rows)


def markdown_table(ev: dict[str, Any], actions: list[str] | None = None) -> str:
    """ROC-AUC / PR-AUC / RCE / calibration / NDCG per action and scorer, as a Markdown table."""
    table = ev["metrics"]
    scorers = [s for s in ("model", "oracle", "matrix_factorization", "author_popularity") if s in table]
    rows = [
        "| action | positives | scorer | ROC-AUC | PR-AUC | RCE | calibration | NDCG | gap closure |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in actions or ev["actions"]:
        for s in scorers:
            m = table[s].get(a)
            if m is None:
                continue
            gap = ev.get("gap_closure", {}).get(a) if s == "model" else None
            rows.append(
                f"| {short_action_name(a)} | {m['positives']} | {s} | {m['roc_auc']:.3f} | "
                f"{m['pr_auc']:.3f} | {m['rce']:.2f} | "
                f"{m['calibration']:.2f} | {m.get('ndcg', float('nan')):.3f} | "
                f"{'' if gap is None else f'{gap:.2f}'} |"
            )
    return "\n".join(rows)
