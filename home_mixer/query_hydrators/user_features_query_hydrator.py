"""Following, blocked, muted, subscriptions, muted keywords and follower count of the viewer
(Redis). A following list longer than Thunder accepts is truncated (deterministically: the lowest
ids), not failed."""

from __future__ import annotations

import asyncio
import heapq
import logging

from candidate_pipeline import QueryHydrator
from home_mixer.clients import UserStateClient
from home_mixer.params import DEFAULT_LIMITS
from home_mixer.query import ScoredPostsQuery, UserFeatures

log = logging.getLogger(__name__)


class UserFeaturesQueryHydrator(QueryHydrator[ScoredPostsQuery]):
    timeout_s = 0.3

    def __init__(self, store: UserStateClient, max_following: int = DEFAULT_LIMITS.max_following) -> None:
        self.store, self.max_following = store, max_following

    async def hydrate(self, query: ScoredPostsQuery) -> UserFeatures:
        g, me = await asyncio.gather(
            self.store.read_social_graph(query.viewer_id),
            self.store.mget_authors([query.viewer_id]),
            return_exceptions=True,
        )
        if isinstance(g, BaseException):
            raise g
        # the viewer's follower count (VQV viewer gate); a failed or missing read leaves it unknown
        followers = me[0].follower_count if isinstance(me, list) and me and me[0] is not None else None
        following = g.following
        if len(following) > self.max_following:
            # Thunder rejects longer lists (the whole in-network source would be lost)
            log.info(
                "viewer %d follows %d accounts; using %d", query.viewer_id, len(following), self.max_following
            )
            following = frozenset(heapq.nsmallest(self.max_following, following))
        return UserFeatures(
            following=following,
            blocked=g.blocked,
            muted=g.muted,
            subscriptions=g.subscriptions,
            muted_keywords=tuple(sorted(g.muted_keywords)),
            viewer_followers_count=followers,
        )

    def update(self, query: ScoredPostsQuery, hydrated: UserFeatures) -> None:
        query.user_features = hydrated  # available=True: the safety filters may trust empty sets
