"""Drops a candidate whose post id came earlier (first wins; sources overlap)."""

from __future__ import annotations

from candidate_pipeline import Filter
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery

Split = tuple[list[PostCandidate], list[PostCandidate]]


class DropDuplicatesFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> Split:
        seen: set[int] = set()
        kept, removed = [], []
        for c in candidates:
            (removed if c.post_id in seen else kept).append(c)
            seen.add(c.post_id)
        return kept, removed
