"""Engagement log -> per-impression table -> requests (history + candidates) -> training batches.

An impression is one (user_id, post_id) pair; its labels are the actions on it (ActionName < 64,
as a uint64 bitmask) and its dwell seconds come from the RECAP_DWELLED row. A user's impressions
in time order are grouped into requests: a new request starts after a session gap, after
`max_candidates` impressions, or where the train/eval split changes. A request's history is every
impression of that user strictly before the request's first impression time (most recent
`history_len`, chronological, with their action multi-hot): no label of a candidate can leak into
its own history. Rows marked `context` (a log directory's history.parquet: engagements from
before the log) are history only: never a candidate, never held out. Candidates are scored
independently (candidate isolation), so grouping them changes compute, not the maths.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from foryou.core.snowflake import timestamps_ms
from phoenix.hashing import HashConfig
from phoenix.holdout import Holdout
from phoenix.log_dir import LogPaths
from phoenix.log_validation import validate_log
from phoenix.ranker.config import EXPOSURE_SLOT, NUM_ACTIONS, RankerConfig, age_bucket
from phoenix.ranker.features import action_multi_hot
from phoenix.ranker.model import RankerBatch
from phoenix.ranker.sids import SidLookup, with_sid_rows
from protos import events_pb2

IMPRESSION = events_pb2.ActionName.IMPRESSION
DWELLED = events_pb2.ActionName.CLIENT_TWEET_RECAP_DWELLED
NOT_DWELLED = events_pb2.ActionName.CLIENT_TWEET_RECAP_NOT_DWELLED
# Negative-feedback heads (report, not interested, see fewer, block / mute author, mute conversation,
# not relevant, see less often): masked on sampled in-batch negatives, which are labelled
# NOT_DWELLED only: a post the user never saw says nothing about their negative feedback.
NEGATIVE_FEEDBACK = (16, 17, 19, 23, 25, 27, 42, 52)


def read_log(path: str | Path) -> pl.DataFrame:
    """The engagement log (a log directory's engagements file), its `LOG_COLUMNS` only: actions by
    name or code, optional columns defaulted, a one-line `LogError` otherwise (phoenix.log_validation)."""
    return validate_log(pl.read_parquet(path), str(path))


def impressions_from_log(df: pl.DataFrame) -> pl.DataFrame:
    """One row per (user_id, post_id): impression time (IMPRESSION row, else the earliest action),
    author, surface, action bitmask and dwell; sorted by user, time, post."""
    a = pl.col("action")
    df = df.unique(subset=["user_id", "post_id", "action"], keep="first")
    act = df["action"].to_numpy().astype(np.int64)
    bits = np.where(act < NUM_ACTIONS, np.left_shift(np.uint64(1), np.clip(act, 0, 63).astype(np.uint64)), 0)
    return (
        df.with_columns(pl.Series("bit", bits.astype(np.uint64)))
        .group_by("user_id", "post_id")
        .agg(
            pl.col("author_id").first(),
            pl.col("timestamp_ms").filter(a == IMPRESSION).min().fill_null(pl.col("timestamp_ms").min()),
            pl.col("product_surface").sort_by(pl.col("timestamp_ms")).first(),
            pl.col("bit").sum().alias("action_mask"),
            pl.col("dwell_ms").filter(a == DWELLED).max().fill_null(0),
        )
        .sort("user_id", "timestamp_ms", "post_id")
    )


def impressions_with_history(logs: LogPaths) -> pl.DataFrame:
    """`impressions_from_log` of the log, plus its history file's impressions (if any) marked
    `context` = True, sorted by user, time, post."""
    return with_history_context(impressions_from_log(read_log(logs.engagements)), logs.history)


def with_history_context(imp: pl.DataFrame, history: Path | None) -> pl.DataFrame:
    """`imp` plus the impressions of the engagement log at `history` (None: nothing) marked
    `context` = True (history only), sorted by user, time, post."""
    if history is None:
        return imp
    ctx = impressions_from_log(read_log(history)).with_columns(context=pl.lit(True))
    both = pl.concat([ctx, imp.with_columns(context=pl.lit(False))])
    return both.sort("user_id", "timestamp_ms", "post_id")


@dataclass
class ImpressionTable:
    """Column arrays of `impressions_from_log`, plus hashed rows and request structure."""

    user_id: np.ndarray
    post_id: np.ndarray
    author_id: np.ndarray
    timestamp_ms: np.ndarray
    surface: np.ndarray
    action_mask: np.ndarray  # uint64
    dwell_ms: np.ndarray
    user_rows: np.ndarray  # [N, 2]
    post_rows: np.ndarray  # [N, 2]
    author_rows: np.ndarray  # [N, 2]
    is_eval: np.ndarray  # bool
    is_context: np.ndarray  # bool: history only (never a candidate)

    @classmethod
    def build(
        cls,
        imp: pl.DataFrame,
        hc: HashConfig,
        eval_fraction: float | Holdout,
        sids: SidLookup | None = None,
        model: RankerConfig | None = None,
    ) -> ImpressionTable:
        """`eval_fraction`: the newest fraction by time is held out, or a `Holdout` rule.
        `sids` + `model`: posts with a semantic id get SID rows instead of post-id hash rows.
        A `context` column (impressions_with_history) marks history-only rows: the hold-out rule
        sees only the others."""
        ts = imp["timestamp_ms"].to_numpy()
        u, p, a = (imp[c].to_numpy() for c in ("user_id", "post_id", "author_id"))
        holdout = eval_fraction if isinstance(eval_fraction, Holdout) else Holdout("time", eval_fraction)
        ctx = imp["context"].to_numpy().astype(bool) if "context" in imp.columns else np.zeros(len(u), bool)
        is_eval = np.zeros(len(u), dtype=bool)
        is_eval[~ctx] = holdout.eval_mask(u[~ctx], ts[~ctx])
        return cls(
            user_id=u,
            post_id=p,
            author_id=a,
            timestamp_ms=ts,
            surface=imp["product_surface"].to_numpy().astype(np.int64),
            action_mask=imp["action_mask"].to_numpy().astype(np.uint64),
            dwell_ms=imp["dwell_ms"].to_numpy().astype(np.int64),
            user_rows=hc.rows(u, "user"),
            post_rows=with_sid_rows(model, p, hc.rows(p, "post"), sids) if model else hc.rows(p, "post"),
            author_rows=hc.rows(a, "author"),
            is_eval=is_eval,
            is_context=ctx,
        )

    def __len__(self) -> int:
        return len(self.user_id)


@dataclass
class Requests:
    """Request r = candidates [cand_start[r], cand_end[r]) and history [hist_start[r], hist_end[r])."""

    cand_start: np.ndarray
    cand_end: np.ndarray
    hist_start: np.ndarray
    hist_end: np.ndarray
    is_eval: np.ndarray

    def __len__(self) -> int:
        return len(self.cand_start)

    def subset(self, mask: np.ndarray) -> Requests:
        return Requests(
            self.cand_start[mask],
            self.cand_end[mask],
            self.hist_start[mask],
            self.hist_end[mask],
            self.is_eval[mask],
        )


def build_requests(
    t: ImpressionTable, history_len: int, max_candidates: int, session_gap_ms: int
) -> Requests:
    n = len(t)
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return Requests(e, e, e, e, np.zeros(0, dtype=bool))
    idx = np.arange(n)
    new_user = np.r_[True, t.user_id[1:] != t.user_id[:-1]]
    gap = np.r_[True, np.diff(t.timestamp_ms) > session_gap_ms]
    flip = np.r_[True, t.is_eval[1:] != t.is_eval[:-1]]
    ctx_flip = np.r_[True, t.is_context[1:] != t.is_context[:-1]]
    session_start = new_user | gap | flip | ctx_flip
    session_first = np.maximum.accumulate(np.where(session_start, idx, 0))
    req_start = session_start | ((idx - session_first) % max_candidates == 0)
    starts = idx[req_start]
    ends = np.r_[starts[1:], n]
    user_first = np.maximum.accumulate(np.where(new_user, idx, 0))
    # history ends at the first impression of the user with timestamp >= the request's start time
    user_rank = np.cumsum(new_user) - 1
    key = (user_rank.astype(np.int64) << 42) | (t.timestamp_ms - t.timestamp_ms.min())
    hist_end = np.searchsorted(key, key[starts], side="left")
    hist_start = np.maximum(user_first[starts], hist_end - history_len)
    keep = ~t.is_context[starts]  # history-only rows never form a request
    return Requests(starts, ends, hist_start, hist_end, t.is_eval[starts]).subset(keep)


@dataclass
class TrainBatch:
    batch: RankerBatch
    labels: torch.Tensor  # [B, C, 64] float
    label_mask: torch.Tensor  # [B, C, 64] float (0 = not trained: padding / negative feedback on negatives)
    dwell_target: torch.Tensor  # [B, C] seconds
    dwell_mask: torch.Tensor  # [B, C] float
    cand_index: np.ndarray  # [B, C] impression index of each candidate slot (-1 = padding / negative)
    request_ms: np.ndarray | None = None  # [B] request time (candidate ages are relative to it)

    def to(self, device: torch.device | str) -> TrainBatch:
        """The tensors on `device` (the numpy bookkeeping stays on the host); `self` on its own
        device (`Tensor.to` returns the same tensors)."""
        return TrainBatch(
            self.batch.to(device),
            self.labels.to(device),
            self.label_mask.to(device),
            self.dwell_target.to(device),
            self.dwell_mask.to(device),
            self.cand_index,
            self.request_ms,
        )


def _gather(arr: np.ndarray, idx: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = arr[np.where(valid, idx, 0)]
    out[~valid] = 0
    return out


def make_batch(
    t: ImpressionTable,
    req: Requests,
    rows: np.ndarray,
    rng: np.random.Generator | None = None,
    in_batch_negatives: bool = False,
) -> TrainBatch:
    """Batch of requests `rows`; history trimmed to the longest in the batch, left-aligned."""
    hs, he = req.hist_start[rows], req.hist_end[rows]
    cs, ce = req.cand_start[rows], req.cand_end[rows]
    s = max(int((he - hs).max(initial=0)), 1)
    c = max(int((ce - cs).max(initial=0)), 1)
    hidx = hs[:, None] + np.arange(s)[None, :]
    hval = hidx < he[:, None]
    cidx = cs[:, None] + np.arange(c)[None, :]
    cval = cidx < ce[:, None]
    labels = action_multi_hot(_gather(t.action_mask, cidx, cval))
    label_mask = np.repeat(cval[..., None], NUM_ACTIONS, axis=2).astype(np.float32)
    dwell = _gather(t.dwell_ms, cidx, cval).astype(np.float32) / 1000.0
    dwell_mask = cval.astype(np.float32)
    cand_post = _gather(t.post_rows, cidx, cval)
    cand_author = _gather(t.author_rows, cidx, cval)
    cand_surface = _gather(t.surface, cidx, cval)
    cand_created = np.where(cval, timestamps_ms(_gather(t.post_id, cidx, cval)), 0)
    # a candidate's age is taken when it was shown (serving: the request time, "now")
    cand_shown = _gather(t.timestamp_ms, cidx, cval)
    cand_index = np.where(cval, cidx, -1)
    if in_batch_negatives:
        # another request's candidates (a different user where possible), labelled NOT_DWELLED only;
        # the negative half is always there (empty for a one-request batch) so its layout is fixed
        shift = 1 if rng is None or len(rows) == 1 else int(rng.integers(1, len(rows)))
        perm = np.roll(np.arange(len(rows)), shift)
        other_user = t.user_id[cs[perm]] != t.user_id[cs]
        nval = cval[perm] & other_user[:, None]
        neg_labels = np.zeros_like(labels)
        neg_labels[..., NOT_DWELLED] = nval
        neg_mask = np.repeat(nval[..., None], NUM_ACTIONS, axis=2).astype(np.float32)
        neg_mask[..., list(NEGATIVE_FEEDBACK)] = 0.0
        labels = np.concatenate([labels, neg_labels], axis=1)
        label_mask = np.concatenate([label_mask, neg_mask], axis=1)
        dwell = np.concatenate([dwell, np.zeros_like(dwell)], axis=1)
        dwell_mask = np.concatenate([dwell_mask, np.zeros_like(dwell_mask)], axis=1)
        cand_post = np.concatenate([cand_post, np.where(nval[..., None], cand_post[perm], 0)], axis=1)
        cand_author = np.concatenate([cand_author, np.where(nval[..., None], cand_author[perm], 0)], axis=1)
        cand_surface = np.concatenate([cand_surface, np.where(nval, cand_surface[perm], 0)], axis=1)
        cand_created = np.concatenate([cand_created, np.where(nval, cand_created[perm], 0)], axis=1)
        # a negative is "shown" at this request's first impression
        cand_shown = np.concatenate([cand_shown, np.repeat(t.timestamp_ms[cs][:, None], c, axis=1)], axis=1)
        cand_index = np.concatenate([cand_index, np.full_like(cand_index, -1)], axis=1)

    def tt(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))

    first = cs
    request_ms = t.timestamp_ms[cs].astype(np.int64)  # the request's first impression
    cand_age = np.where(cand_post[..., 0] != 0, age_bucket(cand_shown - cand_created), 0)
    batch = RankerBatch(
        user_rows=tt(t.user_rows[first]),
        hist_post_rows=tt(_gather(t.post_rows, hidx, hval)),
        hist_author_rows=tt(_gather(t.author_rows, hidx, hval)),
        hist_actions=tt(action_multi_hot(_gather(t.action_mask, hidx, hval))),
        hist_surface=tt(_gather(t.surface, hidx, hval)),
        hist_dwell_s=tt(_gather(t.dwell_ms, hidx, hval).astype(np.float32) / 1000.0),
        cand_post_rows=tt(cand_post),
        cand_author_rows=tt(cand_author),
        cand_surface=tt(cand_surface),
        cand_age=tt(cand_age),
    )
    return TrainBatch(batch, tt(labels), tt(label_mask), tt(dwell), tt(dwell_mask), cand_index, request_ms)


def exposure_labels(tb: TrainBatch, exposure_only: bool) -> TrainBatch:
    """Relabel a batch built with in-batch negatives for the exposure objective: slot
    EXPOSURE_SLOT is 1 on the negatives (another user's impressions) and 0 on the real candidates,
    every other head is untrained on negatives. `exposure_only` (the curriculum's first stage) also
    masks every other head and the dwell loss on the real candidates."""
    c = tb.cand_index.shape[1] // 2
    neg = (tb.batch.cand_post_rows[:, c:, 0] != 0).float()
    labels, mask = tb.labels.clone(), tb.label_mask.clone()
    labels[:, c:] = 0.0
    mask[:, c:] = 0.0
    labels[:, c:, EXPOSURE_SLOT] = neg
    mask[:, c:, EXPOSURE_SLOT] = neg
    real = torch.from_numpy(tb.cand_index[:, :c] >= 0).float()
    labels[:, :c, EXPOSURE_SLOT] = 0.0
    dwell_mask = tb.dwell_mask
    if exposure_only:
        mask[:, :c] = 0.0
        dwell_mask = torch.zeros_like(dwell_mask)
    mask[:, :c, EXPOSURE_SLOT] = real
    return TrainBatch(tb.batch, labels, mask, tb.dwell_target, dwell_mask, tb.cand_index, tb.request_ms)


def hide_user_ids(tb: TrainBatch, share: float, rng: np.random.Generator) -> TrainBatch:
    """Hide the user-id token (rows 0: masked out, as for an unknown user) of a random `share` of
    the batch's requests."""
    hide = torch.from_numpy(rng.random(tb.batch.user_rows.shape[0]) < share)
    user_rows = tb.batch.user_rows.masked_fill(hide.unsqueeze(1), 0)
    return dataclasses.replace(tb, batch=dataclasses.replace(tb.batch, user_rows=user_rows))


def batches_by_length(req: Requests, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of requests with similar history lengths (little padding)."""
    n = len(req)
    order = rng.permutation(n)
    hl = (req.hist_end - req.hist_start)[order]
    # sort within chunks of 50 batches by history length, then shuffle the batches
    chunk = batch_size * 50
    out: list[np.ndarray] = []
    for s in range(0, n, chunk):
        part = order[s : s + chunk][np.argsort(hl[s : s + chunk], kind="stable")]
        out.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [out[i] for i in rng.permutation(len(out))]
