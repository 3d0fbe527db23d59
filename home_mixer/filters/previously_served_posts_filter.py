"""Drops posts already served earlier in the session (any related id in served_ids). On every
request (EnableServedFilterAllRequests, true), else on bottom (pagination) requests only."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class PreviouslyServedPostsFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def enable(self, query: ScoredPostsQuery) -> bool:
        return query.params.enable_served_filter_all_requests or query.is_bottom_request

    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        served = query.served_ids
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            (removed if any(i in served for i in c.related_ids()) else kept).append(c)
        return FilterResult(kept, removed)
