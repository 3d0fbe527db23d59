"""Sampled negatives for the ranker: posts a user never engaged with, added to each training request
as candidates labelled "not engaged" (docs/ranker.md, "Negatives").

A positives-only log (likes / ratings, no impressions) gives the ranker nothing to contrast a positive
with: every label is 1. Sampled negatives supply the contrast. Distributions:

* `uniform` - any post of the training log, equally likely;
* `popularity` - in proportion to the post's training impressions (popular posts are negatives as
  often as they are positives, so popularity alone stops predicting the label);
* `hard` - from the retrieval model's top posts for the user (the candidates the ranker re-ranks
  at serving time, so training matches serving);
* `recent` - half time-matched: the posts of training impressions (of any user) in the
  `RECENT_WINDOW_MS` before the request, in proportion to their impressions then; the other half
  `popularity` draws (so stale posts are negatives too). The time-matched ones are about as fresh
  as the request's positives, so the post's age alone cannot tell them apart and the model has to
  match the candidate against the user's history (docs/ranker.md, "Leave-one-out evaluation").

A user's own posts in the log (any impression or action) are never sampled as their negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from foryou.core.snowflake import timestamps_ms
from phoenix.ranker.config import EXPOSURE_SLOT, NUM_ACTIONS, age_bucket
from phoenix.ranker.data import NEGATIVE_FEEDBACK, NOT_DWELLED, ImpressionTable, TrainBatch

DISTRIBUTIONS = ("uniform", "popularity", "hard", "recent")
RECENT_WINDOW_MS = 24 * 3_600_000


@dataclass
class NegativePool:
    """The posts negatives are drawn from and, per user, the posts that must never be drawn."""

    post_ids: np.ndarray  # [P] unique
    post_rows: np.ndarray  # [P, 2]
    author_rows: np.ndarray  # [P, 2]
    weight: np.ndarray  # [P] sampling probability (uniform / popularity)
    users: np.ndarray  # [U] sorted unique user ids
    seen_keys: np.ndarray  # sorted user_rank * P + post index of every (user, post) in the log
    hard: np.ndarray | None = None  # [U, H] pool indices per user (-1 = none), for `hard`
    # `recent`: the training impressions' times (sorted) and their posts' pool indices
    times: np.ndarray | None = None
    time_post: np.ndarray | None = None

    @classmethod
    def build(cls, t: ImpressionTable, train: np.ndarray, distribution: str) -> NegativePool:
        """Pool = the posts of the training impressions `train` (bool [N]); seen = every (user, post)
        of the table, training or held out (a held-out positive must not become a negative)."""
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"negative distribution must be one of {', '.join(DISTRIBUTIONS)}")
        post_ids, first, counts = np.unique(t.post_id[train], return_index=True, return_counts=True)
        src = np.flatnonzero(train)[first]
        weight = counts.astype(np.float64) if distribution == "popularity" else np.ones(len(post_ids))
        users = np.unique(t.user_id)
        pool = cls(post_ids, t.post_rows[src], t.author_rows[src], weight / weight.sum(), users, np.zeros(0))
        pool.seen_keys = np.unique(pool.keys(t.user_id, pool.index_of(t.post_id)))
        if distribution == "recent":
            order = np.argsort(t.timestamp_ms[train], kind="stable")
            pool.times = t.timestamp_ms[train][order]
            pool.time_post = pool.index_of(t.post_id[train][order])
        return pool

    def index_of(self, post_ids: np.ndarray) -> np.ndarray:
        """Pool index of each post, -1 for posts not in the pool."""
        i = np.clip(np.searchsorted(self.post_ids, post_ids), 0, len(self.post_ids) - 1)
        return np.where(self.post_ids[i] == post_ids, i, -1)

    def keys(self, user_ids: np.ndarray, idx: np.ndarray) -> np.ndarray:
        rank = np.searchsorted(self.users, user_ids).astype(np.int64)
        return rank * len(self.post_ids) + idx

    def is_seen(self, user_ids: np.ndarray, idx: np.ndarray) -> np.ndarray:
        k = self.keys(user_ids, idx)
        pos = np.clip(np.searchsorted(self.seen_keys, k), 0, max(len(self.seen_keys) - 1, 0))
        return (self.seen_keys[pos] == k) if len(self.seen_keys) else np.zeros(k.shape, dtype=bool)

    def _recent(self, request_ms: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """`recent` draws [B, K]: half impressions in each request's window, half (and where the
        window is empty, all) popularity draws."""
        assert self.times is not None and self.time_post is not None
        lo = np.searchsorted(self.times, request_ms - RECENT_WINDOW_MS)
        hi = np.searchsorted(self.times, request_ms, side="right")
        k = lo[:, None] + (rng.random(shape) * (hi - lo)[:, None]).astype(np.int64)
        idx = self.time_post[np.minimum(k, len(self.times) - 1)]
        stale = (hi <= lo)[:, None] | (rng.random(shape) < 0.5)
        return np.where(stale, rng.choice(len(self.post_ids), size=shape, p=self.weight), idx)

    def sample(
        self,
        user_ids: np.ndarray,
        count: int,
        rng: np.random.Generator,
        request_ms: np.ndarray | None = None,
    ) -> np.ndarray:
        """[B, count] pool indices, never a post the user has in the log; -1 where none was found
        after a few redraws (or the user has no hard candidates). `request_ms` [B]: the requests'
        times (`recent` needs them)."""
        b = len(user_ids)
        recent = self.times is not None and request_ms is not None
        if self.hard is not None:
            rank = np.searchsorted(self.users, user_ids)
            h = self.hard[rank]
            idx = h[np.arange(b)[:, None], rng.integers(0, h.shape[1], size=(b, count))]
        elif recent:
            assert request_ms is not None
            idx = self._recent(request_ms, (b, count), rng)
        else:
            idx = rng.choice(len(self.post_ids), size=(b, count), p=self.weight)
        uu = np.broadcast_to(user_ids[:, None], idx.shape)
        for _ in range(4):
            bad = (idx >= 0) & self.is_seen(uu, np.maximum(idx, 0))
            if not bad.any():
                break
            if recent:
                assert request_ms is not None
                redraw = self._recent(request_ms, (b, count), rng)
                idx[bad] = redraw[bad]
            else:
                idx[bad] = rng.choice(len(self.post_ids), size=int(bad.sum()), p=self.weight)
        bad = (idx < 0) | self.is_seen(uu, np.maximum(idx, 0))
        # a post drawn twice for one request is one negative
        srt = np.sort(np.where(bad, -1, idx), axis=1)
        dup = np.zeros_like(bad)
        dup[:, 1:] = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
        return np.where(dup, -1, srt)


def append_negatives(tb: TrainBatch, pool: NegativePool, neg: np.ndarray) -> TrainBatch:
    """`tb` with the pool posts `neg` [B, K] (-1 = none) appended as candidates: labelled
    NOT_DWELLED only, negative-feedback and exposure heads untrained (nothing is known about
    them), no dwell target; shown on the surface of the request's first candidate."""
    valid = neg >= 0
    b, k = neg.shape
    i = np.maximum(neg, 0)
    labels = torch.zeros(b, k, NUM_ACTIONS)
    labels[..., NOT_DWELLED] = torch.from_numpy(valid).float()
    mask = torch.from_numpy(np.repeat(valid[..., None], NUM_ACTIONS, axis=2).astype(np.float32))
    mask[..., list(NEGATIVE_FEEDBACK)] = 0.0
    mask[..., EXPOSURE_SLOT] = 0.0
    post_rows = torch.from_numpy(np.where(valid[..., None], pool.post_rows[i], 0))
    author_rows = torch.from_numpy(np.where(valid[..., None], pool.author_rows[i], 0))
    surface = tb.batch.cand_surface[:, :1].expand(b, k) * torch.from_numpy(valid)
    bt = tb.batch
    age = None
    if bt.cand_age is not None and tb.request_ms is not None:
        # aged at the request's time, like the request's own first candidate
        neg_age = age_bucket(tb.request_ms[:, None] - timestamps_ms(pool.post_ids[i]))
        age = torch.cat([bt.cand_age, torch.from_numpy(np.where(valid, neg_age, 0))], dim=1)
    batch = type(bt)(
        **{
            **{f: getattr(bt, f) for f in bt.__dataclass_fields__},
            "cand_post_rows": torch.cat([bt.cand_post_rows, post_rows], dim=1),
            "cand_author_rows": torch.cat([bt.cand_author_rows, author_rows], dim=1),
            "cand_surface": torch.cat([bt.cand_surface, surface], dim=1),
            "cand_age": age,
        }
    )
    zeros = torch.zeros(b, k)
    return TrainBatch(
        batch,
        torch.cat([tb.labels, labels], dim=1),
        torch.cat([tb.label_mask, mask], dim=1),
        torch.cat([tb.dwell_target, zeros], dim=1),
        torch.cat([tb.dwell_mask, zeros], dim=1),
        np.concatenate([tb.cand_index, np.full((b, k), -1)], axis=1),
        tb.request_ms,
    )
