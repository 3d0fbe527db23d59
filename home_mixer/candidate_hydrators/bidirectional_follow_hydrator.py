"""is_mutual_follow_author (reference BidirectionalFollowHydrator): the viewer follows the (serving)
author and the author follows the viewer. One "followed-by" check (the viewer's follower set) over
the followed authors among the candidates; out-of-network candidates are False without a lookup.
A failed check leaves the field unset on every candidate, so no mutual-follow boost applies."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import Hydrator
from home_mixer.candidate import PostCandidate
from home_mixer.clients import UserStateClient, unique
from home_mixer.query import ScoredPostsQuery


class BidirectionalFollowHydrator(Hydrator[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.2

    def __init__(self, store: UserStateClient) -> None:
        self.store = store

    async def hydrate(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[bool]:
        following = query.user_features.following
        followed = unique(c.author_id for c in candidates if c.author_id in following)
        mutual = await self.store.followed_by(query.viewer_id, followed) if followed else set()
        return [c.author_id in mutual for c in candidates]

    def update(self, candidate: PostCandidate, hydrated: bool) -> None:
        candidate.is_mutual_follow_author = hydrated
