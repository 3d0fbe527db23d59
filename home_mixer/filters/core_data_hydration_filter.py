"""Drops candidates whose core data is missing: no author, a post the store does not have (deleted or
unknown), or blank text. When the store itself was unreachable (`core_data_found is None`) candidates
with a known author are kept here (a quality filter fails open); the safety filters after it remove
the ones they cannot clear without the post's data (subscription flag, text, labels)."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


def _failed(c: PostCandidate) -> bool:
    if c.author_id == 0:
        return True
    if c.core_data_found is None:
        return False
    return not c.core_data_found or not c.text.strip()


class CoreDataHydrationFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            (removed if _failed(c) else kept).append(c)
        return FilterResult(kept, removed)
