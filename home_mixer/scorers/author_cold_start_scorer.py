"""New-author cold start (reference AuthorColdStart inside VMRanker, Oct-7 with Thompson sampling).
On the local weighted scores, at most one post per request is lifted to the score at 0-based rank
15 (the 16th best): score = max(score, T). Eligible: an original (not a reply, not a repost) whose
author has a known follower count ≤ 50,000, created ≤ 7,200 s ago, ranked within the top
floor(0.97 × #non-zero scores), with a known view_count_on_home < 200. Pick: θ ~ Beta(0.75 + favs,
49.25 + views − favs) per eligible post (prior mean 0.015, 50 pseudo-impressions); the 2 highest θ,
then the best current score among them. The draws use the request's seed (`query.random_seed()`),
so a request is reproducible. Fewer than 16 candidates: no lift. Every candidate leaves with
score = local_score = s_loc (the fallback score of the value-model step)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from candidate_pipeline import Scorer
from foryou.core.snowflake import timestamp_ms
from home_mixer.candidate import PostCandidate
from home_mixer.params import Params
from home_mixer.query import ScoredPostsQuery

# (s_loc, lift rank or None, multiplier shown in the debug view or None)
Lifted = tuple[float | None, int | None, float | None]


def _key(s: float | None) -> float:
    return s if s is not None and math.isfinite(s) else -math.inf


def eligible(c: PostCandidate, params: Params, now_ms: int) -> bool:
    if c.is_reply() or c.is_repost():
        return False
    if c.author_followers_count is None or c.author_followers_count > params.cold_start_follower_cap:
        return False
    age_s = (now_ms - timestamp_ms(c.post_id)) / 1000
    if not 0 <= age_s <= params.cold_start_max_post_age_s:
        return False
    return c.view_count_on_home is not None and c.view_count_on_home < params.cold_start_impression_threshold


def beta_posterior(c: PostCandidate, params: Params) -> tuple[float, float]:
    """(α, β) of the post's engagement-rate posterior: prior (α0, β0) + favs out of impressions."""
    n = params.cold_start_impression_scale * (c.view_count_on_home or 0)
    x = min(max(c.fav_count or 0, 0), n)
    return params.cold_start_beta_alpha0 + x, params.cold_start_beta_beta0 + (n - x)


def pick(
    candidates: Sequence[PostCandidate],
    scores: list[float],
    idx: list[int],
    params: Params,
    rng: np.random.Generator,
) -> int:
    """Index (into candidates) of the post to lift among the eligible `idx`."""

    def best_by_score(ix: list[int]) -> int:
        return max(ix, key=lambda i: (scores[i], i))  # a score tie goes to the later index

    k = params.cold_start_ts_top_k
    a0, b0 = params.cold_start_beta_alpha0, params.cold_start_beta_beta0
    if not params.enable_cold_start_thompson_sampling or k <= 0 or a0 <= 0 or b0 <= 0:
        return best_by_score(idx)
    theta = []
    for i in idx:
        a, b = beta_posterior(candidates[i], params)
        try:
            theta.append(float(rng.beta(a, b)))
        except ValueError:
            theta.append(0.5)
    top = sorted(range(len(idx)), key=lambda j: (-theta[j], idx[j]))[:k]
    return best_by_score([idx[j] for j in top])


def cold_start(query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> tuple[int, int, float] | None:
    """(index, rank r, target score T) of the lifted post, or None."""
    p = query.params
    if not p.enable_viewer_cold_start:
        return None
    scores = [_key(c.weighted_score) for c in candidates]
    n = len(scores)
    hi = min(p.cold_start_slot_max, n)
    lo = min(p.cold_start_slot_min, hi)
    if lo >= hi:
        return None
    rng = np.random.default_rng(query.random_seed())
    r = int(rng.integers(lo, hi))
    target = sorted(scores, reverse=True)[r]
    nonzero = [
        i for i in sorted(range(n), key=lambda i: (-scores[i], i)) if scores[i] != 0 and scores[i] > -math.inf
    ]
    limit = math.floor(p.low_impressions_max_position_ratio * len(nonzero))
    position = {i: pos for pos, i in enumerate(nonzero)}
    idx = [
        i for i, c in enumerate(candidates) if position.get(i, limit) < limit and eligible(c, p, query.now_ms)
    ]
    if not idx:
        return None
    return pick(candidates, scores, idx, p, rng), r, target


class AuthorColdStartScorer(Scorer[ScoredPostsQuery, PostCandidate]):
    # sync on purpose: cheap CPU work that must run even after the request deadline passed
    def score(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[Lifted]:
        out: list[Lifted] = [(c.weighted_score, None, None) for c in candidates]
        lift = cold_start(query, candidates)
        if lift is not None:
            i, r, target = lift
            w = candidates[i].weighted_score
            if w is not None and target > w:
                out[i] = (target, r, target / w if w > 0 else math.inf)
            else:
                out[i] = (w, r, 1.0)
        return out

    def update(self, candidate: PostCandidate, hydrated: Lifted) -> None:
        s, candidate.cold_start_lift_rank, m = hydrated
        candidate.score = candidate.local_score = s
        if m is not None:
            candidate.multipliers.append((self.name, m))
