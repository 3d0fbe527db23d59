"""Records the served post ids in the viewer's served history in Redis (sorted set by serve time,
trimmed to the newest served_history_max, expiring after served_history_ttl_s)."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import SideEffect
from home_mixer.candidate import PostCandidate
from home_mixer.clients import UserStateClient
from home_mixer.query import ScoredPostsQuery


class ServedHistorySideEffect(SideEffect[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.5

    def __init__(self, store: UserStateClient) -> None:
        self.store = store

    async def run(
        self,
        query: ScoredPostsQuery,
        selected: Sequence[PostCandidate],
        non_selected: Sequence[PostCandidate],
    ) -> None:
        ids = [c.post_id for c in selected]
        ids += [c.retweeted_post_id for c in selected if c.retweeted_post_id]
        p = query.params
        await self.store.add_served(query.viewer_id, ids, p.served_history_ttl_s, p.served_history_max)
