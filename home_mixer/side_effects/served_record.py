"""The `served` record (ServedEvent) of one served post: what the feed showed and why, so that a
replay can join it with `engagements` into training rows (negatives included) and attribute each
row to the ranker and retrieval models that produced it.

Scores are written as the response reports them (non-finite -> 0) so the log equals what the client
saw. Probabilities are one packed float32 array indexed by ActionName (the ranker's own precision,
exactly what the debug view shows); empty when the ranker did not score the post."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from home_mixer.candidate import PostCandidate, finite_or_zero
from home_mixer.params import ACTION_HEADS
from home_mixer.query import ScoredPostsQuery
from home_mixer.scorers.phoenix_scorer import ranking_surface
from protos import events_pb2

N_ACTIONS = 64  # ranker heads: slot i = ActionName i


def action_prob_vector(c: PostCandidate) -> list[float]:
    """The ranker's 64 probabilities of `c`, index = ActionName; [] when it was not scored. A
    per-head dict (tests, other callers) leaves the heads it lacks NaN ("not predicted")."""
    probs = c.action_probs
    if probs is not None:  # a row of the ranker's matrix (ndarray) or a plain list
        return probs.tolist() if hasattr(probs, "tolist") else [float(p) for p in probs]
    if c.phoenix_scores is None:
        return []
    out = [math.nan] * N_ACTIONS
    for head, idx in ACTION_HEADS.items():
        if head in c.phoenix_scores:
            out[idx] = c.phoenix_scores[head]
    return out


def predicted_dwell(c: PostCandidate) -> float | None:
    if c.action_probs is not None:
        return c.dwell_time
    if c.phoenix_scores is not None:
        return c.phoenix_scores.get("dwell_time")
    return None


def served_event(
    query: ScoredPostsQuery, c: PostCandidate, position: int, now_ms: int
) -> events_pb2.ServedEvent:
    ev = events_pb2.ServedEvent(
        viewer_id=query.viewer_id,
        post_id=c.post_id,
        author_id=c.author_id,
        position=position,
        score=finite_or_zero(c.score),
        request_id=query.request_id,
        model_version=query.model_version,  # the ranker's (PhoenixScorer sets it)
        served_at_ms=now_ms,
        in_network=c.in_network is True,
        source=c.source,
        retrieval_model_version=c.retrieval_model_version,
        action_probs=action_prob_vector(c),
        weighted_score=finite_or_zero(c.weighted_score),
        experiment_bucket=query.experiment_bucket,  # "<experiment>:<bucket>,…" (home_mixer.experiments)
        product_surface=ranking_surface(query),
    )
    dwell = predicted_dwell(c)
    if dwell is not None:
        ev.predicted_dwell_s = dwell
    return ev


def served_events(query: ScoredPostsQuery, selected: Sequence[PostCandidate]) -> list[events_pb2.ServedEvent]:
    """One record per selected post, position = its rank in the response."""
    now_ms = int(time.time() * 1000)
    return [served_event(query, c, i, now_ms) for i, c in enumerate(selected)]
