"""Action probabilities from the Phoenix ranker (RankingService.Predict). A repost is scored as its
original post by its original author. No history or a failed call leaves candidates unscored (the
weighted scorer then falls back to recency)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from candidate_pipeline import Scorer
from home_mixer.candidate import PostCandidate
from home_mixer.clients import RankingClient, as_predictions
from home_mixer.params import DWELL_TIME_INDEX
from home_mixer.query import ScoredPostsQuery
from protos import events_pb2, phoenix_pb2

Scores = tuple[Any, float | None, str, int] | None  # (64 probabilities, dwell s, prediction id, ms)


def ranking_surface(query: ScoredPostsQuery) -> events_pb2.ProductSurface:
    """The product surface candidates are ranked for (also recorded in the served log)."""
    if query.in_network_only:
        return events_pb2.PRODUCT_SURFACE_RANKED_FOLLOWING
    return events_pb2.PRODUCT_SURFACE_HOME_TIMELINE


class PhoenixScorer(Scorer[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.5

    def __init__(self, client: RankingClient) -> None:
        self.client = client

    async def score(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[Scores]:
        if query.action_sequence is None:
            return [None] * len(candidates)
        surface = ranking_surface(query)
        req = phoenix_pb2.PredictRequest(user_id=query.viewer_id, action_sequence=query.action_sequence)
        for c in candidates:
            req.candidates.add(
                post_id=c.original_post_id(), author_id=c.original_author_id(), product_surface=surface
            )
        preds = as_predictions(await self.client.predict(req))
        if len(preds.probs) != len(candidates):
            raise RuntimeError(f"ranker returned {len(preds.probs)} predictions for {len(candidates)}")
        query.model_version = preds.model_version
        prediction_id, now_ms = uuid.uuid4().hex[:16], int(time.time() * 1000)
        # rows of one matrix: the weighted scorer combines them with one matrix product
        cont = preds.continuous
        dwell = cont[:, DWELL_TIME_INDEX].tolist() if cont.shape[1] > DWELL_TIME_INDEX else [None] * len(cont)
        return [(preds.probs[i], dwell[i], prediction_id, now_ms) for i in range(len(candidates))]

    def update(self, candidate: PostCandidate, hydrated: Scores) -> None:
        if hydrated is None:
            return
        probs, dwell, candidate.prediction_request_id, candidate.last_scored_at_ms = hydrated
        candidate.action_probs, candidate.dwell_time, candidate.phoenix_scores = probs, dwell, None
