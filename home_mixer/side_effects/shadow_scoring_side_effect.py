"""Shadow scoring: a share of requests (params file `[shadow]`, by hash of the request id) is also
scored by a shadow ranker version after the response has gone. Nothing of it is served and nothing
goes to the `served` log (the training data stays what users saw); per shadow-scored request:

- metrics: `foryou_home_mixer_shadow_scored_total{version, outcome}` and histograms of the overlap
  of the served feed with the shadow's top of the same length (`..._shadow_overlap`) and of the
  Spearman correlation of the two models' weighted scores over the pool (`..._shadow_rank_corr`);
- one log line "shadow scored" with request id, viewer, bucket, both versions, overlap, rank
  correlation, and the post ids the shadow would have served first.

The pool is the served posts plus the best-scored candidates that were not selected, up to
`max_pool` (the shadow's ranking is compared where it could matter, at bounded ranker cost)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
from prometheus_client import Counter, Histogram

from candidate_pipeline import SideEffect
from home_mixer.candidate import PostCandidate
from home_mixer.clients import RankingClient, as_predictions
from home_mixer.params import DWELL_TIME_INDEX
from home_mixer.query import ScoredPostsQuery
from home_mixer.scorers.phoenix_scorer import predict_request
from home_mixer.scorers.weighted_scorer import N_ACTIONS, combined_scores_vectorized

log = logging.getLogger(__name__)

SHADOW_SCORED = Counter(
    "foryou_home_mixer_shadow_scored_total", "Requests scored by a shadow ranker", ["version", "outcome"]
)
SHADOW_OVERLAP = Histogram(
    "foryou_home_mixer_shadow_overlap",
    "Share of the served feed in the shadow model's top of the same length",
    ["version"],
    buckets=(0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0),
)
SHADOW_RANK_CORR = Histogram(
    "foryou_home_mixer_shadow_rank_corr",
    "Spearman correlation of served and shadow weighted scores over the shadow-scored pool",
    ["version"],
    buckets=(-0.5, 0.0, 0.25, 0.5, 0.75, 0.9, 1.0),
)


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x))
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


class ShadowScoringSideEffect(SideEffect[ScoredPostsQuery, PostCandidate]):
    def __init__(self, client: RankingClient, max_pool: int = 200) -> None:
        self.client, self.max_pool = client, max_pool

    async def run(
        self,
        query: ScoredPostsQuery,
        selected: Sequence[PostCandidate],
        non_selected: Sequence[PostCandidate],
    ) -> None:
        version = query.shadow_ranker_version
        if not version or not selected or query.action_sequence is None:
            return
        rest = sorted(
            (c for c in non_selected if c.weighted_score is not None),
            key=lambda c: -(c.weighted_score or 0.0),
        )
        pool = [*selected, *rest[: max(self.max_pool - len(selected), 0)]]
        req = predict_request(query, pool)
        req.model_version = version
        try:
            preds = as_predictions(await self.client.predict(req))
            if preds.probs.shape != (len(pool), N_ACTIONS):
                raise RuntimeError(f"shadow ranker answered {preds.probs.shape} for {len(pool)} candidates")
        except Exception as e:
            SHADOW_SCORED.labels(version, "failed").inc()
            log.warning("shadow scoring with %s failed: %s", version, e)
            return
        shadow = []
        for i, c in enumerate(pool):
            s = copy.copy(c)
            s.action_probs = preds.probs[i]
            s.dwell_time = (
                float(preds.continuous[i, DWELL_TIME_INDEX]) if preds.continuous.shape[1] > 1 else None
            )
            s.click_dwell_time = None
            shadow.append(s)
        followers = query.user_features.viewer_followers_count
        shadow_w = combined_scores_vectorized(shadow, query.params, followers)
        served_w = np.array([c.weighted_score or 0.0 for c in pool])
        k = len(selected)
        top = np.argsort(-shadow_w, kind="stable")[:k]
        overlap = float(np.sum(top < k)) / k  # served posts are the pool's first k
        corr = spearman(served_w, shadow_w)
        SHADOW_SCORED.labels(version, "ok").inc()
        SHADOW_OVERLAP.labels(version).observe(overlap)
        if corr == corr:
            SHADOW_RANK_CORR.labels(version).observe(corr)
        log.info(
            "shadow scored",
            extra={
                "request_id": query.request_id,
                "viewer_id": query.viewer_id,
                "experiment_bucket": query.experiment_bucket,
                "served_version": query.model_version,
                "shadow_version": preds.model_version or version,
                "pool": len(pool),
                "overlap": round(overlap, 4),
                "rank_corr": round(corr, 4),
                "shadow_top": [pool[i].post_id for i in top[:10].tolist()],
            },
        )
