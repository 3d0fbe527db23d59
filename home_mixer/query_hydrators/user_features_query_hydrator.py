"""Following, blocked, muted, subscriptions and muted keywords of the viewer (Redis)."""

from __future__ import annotations

from candidate_pipeline import QueryHydrator
from home_mixer.clients import UserStateClient
from home_mixer.query import ScoredPostsQuery, UserFeatures


class UserFeaturesQueryHydrator(QueryHydrator[ScoredPostsQuery]):
    timeout_s = 0.3

    def __init__(self, store: UserStateClient) -> None:
        self.store = store

    async def hydrate(self, query: ScoredPostsQuery) -> UserFeatures:
        g = await self.store.read_social_graph(query.viewer_id)
        return UserFeatures(
            following=g.following,
            blocked=g.blocked,
            muted=g.muted,
            subscriptions=g.subscriptions,
            muted_keywords=tuple(sorted(g.muted_keywords)),
        )

    def update(self, query: ScoredPostsQuery, hydrated: UserFeatures) -> None:
        query.user_features = hydrated
