"""Drops a candidate whose post id came earlier (first wins; sources overlap)."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class DropDuplicatesFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        seen: set[int] = set()
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            (removed if c.post_id in seen else kept).append(c)
            seen.add(c.post_id)
        return FilterResult(kept, removed)
