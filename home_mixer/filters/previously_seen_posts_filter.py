"""Drops posts the client says the viewer has seen: any related id (post, reposted post, replied-to
post) in seen_ids."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class PreviouslySeenPostsFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def enable(self, query: ScoredPostsQuery) -> bool:
        return bool(query.seen_ids)

    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        seen = query.seen_ids
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            (removed if any(i in seen for i in c.related_ids()) else kept).append(c)
        return FilterResult(kept, removed)
