"""Bottom requests: adds the viewer's served history (Redis, written by ServedHistorySideEffect) to
the request's served_ids, so pagination never repeats a post even when the client sends none."""

from __future__ import annotations

from candidate_pipeline import QueryHydrator
from home_mixer.clients import UserStateClient
from home_mixer.query import ScoredPostsQuery


class ServedHistoryQueryHydrator(QueryHydrator[ScoredPostsQuery]):
    timeout_s = 0.3

    def __init__(self, store: UserStateClient) -> None:
        self.store = store

    def enable(self, query: ScoredPostsQuery) -> bool:
        return query.is_bottom_request

    async def hydrate(self, query: ScoredPostsQuery) -> frozenset[int]:
        return frozenset(await self.store.read_served(query.viewer_id))

    def update(self, query: ScoredPostsQuery, hydrated: frozenset[int]) -> None:
        query.served_ids = query.served_ids | hydrated
