"""Post-selection: does the author (or the reposted user) block the viewer? Input of visibility."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import Hydrator
from home_mixer.candidate import PostCandidate
from home_mixer.clients import UserStateClient
from home_mixer.query import ScoredPostsQuery


class AuthorRelationCandidateHydrator(Hydrator[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.2

    def __init__(self, store: UserStateClient) -> None:
        self.store = store

    async def hydrate(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[bool]:
        ids = [c.author_id for c in candidates] + [
            c.retweeted_user_id for c in candidates if c.retweeted_user_id
        ]
        blocking = await self.store.authors_blocking(query.viewer_id, ids)
        return [c.author_id in blocking or (c.retweeted_user_id or 0) in blocking for c in candidates]

    def update(self, candidate: PostCandidate, hydrated: bool) -> None:
        candidate.author_blocks_viewer = hydrated
