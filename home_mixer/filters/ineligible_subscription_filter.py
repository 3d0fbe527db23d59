"""Drops subscriber-only posts of authors the viewer does not subscribe to."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class IneligibleSubscriptionFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        subs = query.user_features.subscriptions
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            bad = c.subscription_author_id is not None and c.subscription_author_id not in subs
            (removed if bad else kept).append(c)
        return FilterResult(kept, removed)
