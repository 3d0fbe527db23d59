"""Drops posts by authors the viewer blocks or mutes (also when they reposted someone, and reposts
of authors the viewer blocks)."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class AuthorSocialgraphFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        uf = query.user_features
        hidden = uf.blocked | uf.muted
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            bad = c.author_id in hidden or (c.retweeted_user_id or 0) in uf.blocked
            (removed if bad else kept).append(c)
        return FilterResult(kept, removed)
