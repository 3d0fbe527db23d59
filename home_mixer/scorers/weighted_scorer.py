"""The value model's local score (reference VMRanker H1, Oct-7 `xai-value-model` Σ):
weighted_score = offset(Σ P(action) × weight + dwell_time × 0.004 + click_dwell_time × 0.4). Reply
weight 5 + 15 (and dwell weight + its 0 boost) for an original of a mutual-follow author; VQV weight
only for videos longer than min_video_duration_ms and a viewer with fewer than 10,000 followers
(home-mixer's local gate); post_unexplored for in-network posts only; missing or non-finite heads
count 0; a negative total maps into [0, offset), a
non-negative one gets + offset. Candidates the ranker did not score get offset × recency (in
[0, offset)): below every positively scored post, newest first. Raw ranker vectors are combined
with one matrix product; per-head dicts (tests, other callers) take the loop."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from candidate_pipeline import Scorer
from foryou.core.snowflake import timestamp_ms
from home_mixer.candidate import PostCandidate
from home_mixer.params import ACTION_HEADS, Params
from home_mixer.query import ScoredPostsQuery

RECENCY_FALLBACK = "RecencyFallback"
N_ACTIONS = 64


def offset_score(combined: float, params: Params, sums: tuple[float, float, float] | None = None) -> float:
    _, neg_sum, total = sums or params.weight_sums()
    off = params.negative_scores_offset
    if total == 0:
        return max(combined, 0.0)
    if combined < 0:
        return max(0.0, (combined + neg_sum) / total * off)  # clamp float round-off below 0
    return combined + off


def mutual_follow_boosted(c: PostCandidate) -> bool:
    """The reply / dwell boosts apply: an original (not a reply, not a repost) by a mutual follow."""
    return c.is_mutual_follow_author is True and not c.is_reply() and not c.is_repost()


def vqv_viewer_ok(params: Params, viewer_followers: int | None) -> bool:
    """Home-mixer's local VQV gate on the viewer: fewer followers than the cap (unknown counts 0)."""
    return (viewer_followers or 0) < params.vqv_max_viewer_followers


def _continuous(x: float | None) -> float:
    return x if x is not None and math.isfinite(x) else 0.0


def combined_score(
    c: PostCandidate,
    in_network: bool,
    params: Params,
    weights: dict[str, float] | None = None,
    viewer_followers: int | None = None,
) -> float:
    scores = c.head_scores()
    weights = dict(weights or params.weights())
    if mutual_follow_boosted(c):
        weights["reply"] += params.bidirectional_follow_reply_weight_boost
        weights["dwell"] += params.bidirectional_follow_dwell_weight_boost
    vqv_ok = vqv_viewer_ok(params, viewer_followers)
    total = 0.0
    for head, w in weights.items():
        if w == 0.0:
            continue
        p = scores.get(head)
        if p is None or not math.isfinite(p):
            continue
        if head == "vqv" and not (vqv_ok and (c.video_duration_ms or 0) > params.min_video_duration_ms):
            continue
        if head == "post_unexplored" and not in_network:
            continue
        total += p * w
    total += _continuous(scores.get("dwell_time")) * params.cont_dwell_time_weight
    total += _continuous(scores.get("click_dwell_time")) * params.cont_click_dwell_time_weight
    return total


def combined_scores_vectorized(
    cands: Sequence[PostCandidate], params: Params, viewer_followers: int | None = None
) -> np.ndarray:
    """combined_score for candidates carrying raw 64-slot action_probs, as one matrix product."""
    p = np.stack([np.asarray(c.action_probs, dtype=np.float64) for c in cands])
    p[~np.isfinite(p)] = 0.0
    w = np.zeros(N_ACTIONS)
    for head, idx in ACTION_HEADS.items():
        w[idx] = params.weight(head)
    contrib = p * w
    vqv, unexplored = ACTION_HEADS["vqv"], ACTION_HEADS["post_unexplored"]
    vqv_ok = vqv_viewer_ok(params, viewer_followers)
    long_video = np.array(
        [vqv_ok and (c.video_duration_ms or 0) > params.min_video_duration_ms for c in cands]
    )
    in_network = np.array([c.in_network is True for c in cands])
    contrib[~long_video, vqv] = 0.0
    contrib[~in_network, unexplored] = 0.0
    total = contrib.sum(axis=1)
    boosted = np.array([mutual_follow_boosted(c) for c in cands])
    if boosted.any():
        extra = (
            p[:, ACTION_HEADS["reply"]] * params.bidirectional_follow_reply_weight_boost
            + p[:, ACTION_HEADS["dwell"]] * params.bidirectional_follow_dwell_weight_boost
        )
        total += np.where(boosted, extra, 0.0)
    dwell = np.array([_continuous(c.dwell_time) for c in cands], dtype=np.float64)
    click = np.array([_continuous(c.click_dwell_time) for c in cands], dtype=np.float64)
    return total + dwell * params.cont_dwell_time_weight + click * params.cont_click_dwell_time_weight


def recency(c: PostCandidate, now_ms: int, max_age_ms: int) -> float:
    age = now_ms - timestamp_ms(c.post_id)
    return min(1.0, max(0.0, 1.0 - age / max_age_ms)) if max_age_ms > 0 else 0.0


class WeightedScorer(Scorer[ScoredPostsQuery, PostCandidate]):
    # sync on purpose: cheap CPU work that must run even after the request deadline passed
    def score(
        self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]
    ) -> list[tuple[float, float | None]]:
        p = query.params
        weights, sums = p.weights(), p.weight_sums()
        followers = query.user_features.viewer_followers_count
        out: list[tuple[float, float | None]] = [(0.0, None)] * len(candidates)
        vec = [
            i
            for i, c in enumerate(candidates)
            if c.action_probs is not None and len(c.action_probs) == N_ACTIONS
        ]
        if vec:
            combined = combined_scores_vectorized([candidates[i] for i in vec], p, followers)
            for i, x in zip(vec, combined.tolist(), strict=True):
                out[i] = (offset_score(x, p, sums), None)
        done = set(vec)
        for i, c in enumerate(candidates):
            if i in done:
                continue
            if not c.is_scored():
                r = recency(c, query.now_ms, p.max_post_age_s * 1000)
                out[i] = (p.negative_scores_offset * r * 0.999, r)  # strictly below the offset
            else:
                x = combined_score(c, c.in_network is True, p, weights, followers)
                out[i] = (offset_score(x, p, sums), None)
        return out

    def update(self, candidate: PostCandidate, hydrated: tuple[float, float | None]) -> None:
        candidate.weighted_score, fallback = hydrated
        if fallback is not None:
            candidate.multipliers.append((RECENCY_FALLBACK, fallback))
