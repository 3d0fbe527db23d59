"""Action probabilities from the Phoenix ranker (RankingService.Predict). A repost is scored as its
original post by its original author. No history or a failed call leaves candidates unscored (the
weighted scorer then falls back to recency). A viewer whose experiment bucket pins a ranker version
is scored by that version; when the ranker cannot serve it (unknown, unloadable), the request is
scored by the promoted model and `ranker_version_unavailable` is listed in `degraded`."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from candidate_pipeline import Scorer
from home_mixer.candidate import PostCandidate
from home_mixer.clients import RankingClient, as_predictions
from home_mixer.params import CLICK_DWELL_TIME_INDEX, DWELL_TIME_INDEX
from home_mixer.query import ScoredPostsQuery
from protos import events_pb2, phoenix_pb2

log = logging.getLogger(__name__)
VERSION_UNAVAILABLE = "ranker_version_unavailable"  # a `degraded` entry

# (64 probabilities, dwell s, click-dwell s, prediction id, ms)
Scores = tuple[Any, float | None, float | None, str, int] | None


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
        req = predict_request(query, candidates)
        req.model_version = query.ranker_version
        try:
            preds = as_predictions(await self.client.predict(req))
        except Exception as e:
            if not query.ranker_version:
                raise
            log.warning(
                "ranker version %s unavailable (%s): scored by the promoted model", req.model_version, e
            )
            query.stale.add(VERSION_UNAVAILABLE)
            req.model_version = ""
            preds = as_predictions(await self.client.predict(req))
        if len(preds.probs) != len(candidates):
            raise RuntimeError(f"ranker returned {len(preds.probs)} predictions for {len(candidates)}")
        query.model_version = preds.model_version
        prediction_id, now_ms = uuid.uuid4().hex[:16], int(time.time() * 1000)
        # rows of one matrix: the weighted scorer combines them with one matrix product
        cont = preds.continuous
        n = len(cont)
        dwell = cont[:, DWELL_TIME_INDEX].tolist() if cont.shape[1] > DWELL_TIME_INDEX else [None] * n
        # the click-dwell head only when the ranker is known to train it (ours does not: its slot 2
        # is an untrained 30·sigmoid output, noise that × 0.4 would outweigh every other term)
        has_click = query.params.ranker_has_click_dwell_head and cont.shape[1] > CLICK_DWELL_TIME_INDEX
        click = cont[:, CLICK_DWELL_TIME_INDEX].tolist() if has_click else [None] * n
        return [(preds.probs[i], dwell[i], click[i], prediction_id, now_ms) for i in range(len(candidates))]

    def update(self, candidate: PostCandidate, hydrated: Scores) -> None:
        if hydrated is None:
            return
        probs, dwell, click, candidate.prediction_request_id, candidate.last_scored_at_ms = hydrated
        candidate.action_probs, candidate.dwell_time, candidate.phoenix_scores = probs, dwell, None
        candidate.click_dwell_time = click


def predict_request(
    query: ScoredPostsQuery, candidates: Sequence[PostCandidate]
) -> phoenix_pb2.PredictRequest:
    """The ranker request for `candidates` (reposts as their originals) on the query's surface."""
    surface = ranking_surface(query)
    req = phoenix_pb2.PredictRequest(user_id=query.viewer_id, action_sequence=query.action_sequence)
    for c in candidates:
        req.candidates.add(
            post_id=c.original_post_id(), author_id=c.original_author_id(), product_surface=surface
        )
    return req
