"""Drops candidates whose core data is missing: no author, or a post the store does not have
(deleted or unknown). Text is not checked (reference Aug/Oct CoreDataHydrationFilter): media-only
posts with empty text are kept. When the store itself was unreachable (`core_data_found is None`)
candidates with a known author are kept here (a quality filter fails open); the safety filters
after it remove the ones they cannot clear without the post's data (subscription flag, labels)."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


def _failed(c: PostCandidate) -> bool:
    if c.author_id == 0:
        return True
    return c.core_data_found is False


class CoreDataHydrationFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            (removed if _failed(c) else kept).append(c)
        return FilterResult(kept, removed)
