"""view_count_on_home and fav_count (reference EngagementCountsHydrator, keyed by the original post
id): the per-post counts foryou.ingest's EngagementCountsIngester keeps in Redis. A post absent from
the counter keeps None (then it is not eligible for the new-author cold start)."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import Hydrator
from home_mixer.candidate import PostCandidate
from home_mixer.clients import UserStateClient, unique
from home_mixer.query import ScoredPostsQuery

Counts = tuple[int, int] | None


class EngagementCountsHydrator(Hydrator[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.2

    def __init__(self, store: UserStateClient) -> None:
        self.store = store

    async def hydrate(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[Counts]:
        ids = unique(c.original_post_id() for c in candidates)
        by_id = dict(zip(ids, await self.store.mget_engagement_counts(ids), strict=True))
        return [by_id.get(c.original_post_id()) for c in candidates]

    def update(self, candidate: PostCandidate, hydrated: Counts) -> None:
        if hydrated is not None:
            candidate.view_count_on_home, candidate.fav_count = hydrated
