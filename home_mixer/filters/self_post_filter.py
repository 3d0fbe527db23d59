"""Drops the viewer's own posts (reference SelfTweetFilter)."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class SelfPostFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            (removed if c.author_id == query.viewer_id else kept).append(c)
        return FilterResult(kept, removed)
