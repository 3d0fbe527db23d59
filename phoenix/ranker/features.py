"""Host-side input building: raw ids -> hashed shared-table rows -> `RankerBatch` (numpy, vectorised).

History (user + engagement sequence) and candidates are built separately so retrieval can reuse the
history half."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from foryou.core.snowflake import timestamps_ms
from phoenix.hashing import HashConfig
from phoenix.ranker.config import NUM_ACTIONS, PRODUCT_SURFACE_VOCAB, RankerConfig, age_bucket
from phoenix.ranker.model import RankerBatch
from phoenix.ranker.sids import SidLookup, with_sid_rows

_BITS = np.arange(NUM_ACTIONS, dtype=np.uint64)


def action_multi_hot(masks: np.ndarray) -> np.ndarray:
    """uint64 action bitmasks (bit i = ActionName i) -> float32 multi-hot [..., 64]."""
    m = np.asarray(masks).astype(np.uint64)
    return ((m[..., None] >> _BITS) & np.uint64(1)).astype(np.float32)


def action_bitmask(actions: np.ndarray) -> np.ndarray:
    """ActionName values (< 64) -> uint64 bitmask with that bit set."""
    return np.left_shift(np.uint64(1), np.asarray(actions).astype(np.uint64))


@dataclass
class HistoryArrays:
    """One or more users' histories, left-aligned (valid first, oldest first), 0-padded, [B, S]."""

    user_ids: np.ndarray  # [B]
    post_ids: np.ndarray  # [B, S]
    author_ids: np.ndarray  # [B, S]
    action_masks: np.ndarray  # [B, S] uint64 bitmask
    surfaces: np.ndarray  # [B, S]
    dwell_ms: np.ndarray  # [B, S]

    @classmethod
    def single(
        cls,
        user_id: int,
        post_ids: np.ndarray,
        author_ids: np.ndarray,
        action_masks: np.ndarray,
        surfaces: np.ndarray,
        dwell_ms: np.ndarray,
        history_len: int,
    ) -> HistoryArrays:
        """One user's chronological history (oldest first); keeps the most recent `history_len`."""
        n = min(len(post_ids), history_len)

        def fit(a: np.ndarray, dtype: type) -> np.ndarray:
            out = np.zeros((1, history_len), dtype=dtype)
            if n:
                out[0, :n] = np.asarray(a)[len(a) - n :]
            return out

        return cls(
            user_ids=np.array([user_id], dtype=np.int64),
            post_ids=fit(post_ids, np.int64),
            author_ids=fit(author_ids, np.int64),
            action_masks=fit(action_masks, np.uint64),
            surfaces=fit(surfaces, np.int64),
            dwell_ms=fit(dwell_ms, np.int64),
        )


@dataclass
class CandidateArrays:
    post_ids: np.ndarray  # [B, C]
    author_ids: np.ndarray  # [B, C]
    surfaces: np.ndarray  # [B, C]


def build_batch(
    hc: HashConfig,
    hist: HistoryArrays,
    cand: CandidateArrays,
    sids: SidLookup | None = None,
    model: RankerConfig | None = None,
    now_ms: int | None = None,
) -> RankerBatch:
    """`sids` + `model`: history and candidate posts with a semantic id get SID rows. `now_ms`: the
    request time, which the candidates' ages (from their snowflake ids) are taken at; None = ages
    unknown."""

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))

    def post_rows(ids: np.ndarray) -> np.ndarray:
        rows = hc.rows(ids, "post")
        return with_sid_rows(model, ids, rows, sids) if model is not None else rows

    return RankerBatch(
        user_rows=t(hc.rows(hist.user_ids, "user")),
        hist_post_rows=t(post_rows(hist.post_ids)),
        hist_author_rows=t(hc.rows(hist.author_ids, "author")),
        hist_actions=t(action_multi_hot(hist.action_masks)),
        hist_surface=t(np.asarray(hist.surfaces, dtype=np.int64)),
        hist_dwell_s=t(np.asarray(hist.dwell_ms, dtype=np.float32) / 1000.0),
        cand_post_rows=t(post_rows(cand.post_ids)),
        cand_author_rows=t(hc.rows(cand.author_ids, "author")),
        cand_surface=t(np.asarray(cand.surfaces, dtype=np.int64)),
        cand_age=None if now_ms is None else t(candidate_ages(cand.post_ids, now_ms)),
    )


def candidate_ages(post_ids: np.ndarray, now_ms: int | np.ndarray) -> np.ndarray:
    """Age buckets (RankerConfig `age_bucket`) of snowflake `post_ids` [..., C] at `now_ms` (a
    scalar or [..., 1]); 0 (unknown) for padding (post id 0)."""
    ids = np.asarray(post_ids, dtype=np.int64)
    return np.where(ids != 0, age_bucket(np.asarray(now_ms, dtype=np.int64) - timestamps_ms(ids)), 0)


def check_surfaces(surfaces: np.ndarray, what: str) -> None:
    """ValueError (-> INVALID_ARGUMENT) naming the first `product_surface` outside the models'
    surface vocabulary [0, 16) (the ProductSurface ids; the models used to clamp anything else
    silently); `what` names the list ("candidate")."""
    a = np.asarray(surfaces, dtype=np.int64)
    bad = np.flatnonzero((a < 0) | (a >= PRODUCT_SURFACE_VOCAB))
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{what} {i}: product_surface {int(a[i])} is out of range [0, {PRODUCT_SURFACE_VOCAB})"
        )
