"""Author follower count and screen names (author and reposted user): one Redis pipeline for the
authors not in a small in-process TTL cache (the reference caches Gizmoduck users the same way)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from candidate_pipeline import Hydrator
from foryou.core.user_state import AuthorData
from home_mixer.candidate import PostCandidate
from home_mixer.clients import UserStateClient, unique
from home_mixer.query import ScoredPostsQuery

Hydrated = tuple[AuthorData | None, AuthorData | None]


class AuthorDataCandidateHydrator(Hydrator[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.3

    def __init__(self, store: UserStateClient, cache_ttl_s: float = 60.0, cache_max: int = 200_000) -> None:
        self.store, self.cache_ttl_s, self.cache_max = store, cache_ttl_s, cache_max
        self._cache: dict[int, tuple[float, AuthorData | None]] = {}

    async def hydrate(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[Hydrated]:
        ids = unique([c.author_id for c in candidates] + [c.retweeted_user_id or 0 for c in candidates])
        now = time.monotonic()
        by_id: dict[int, AuthorData | None] = {}
        misses = []
        for i in ids:
            if not i:
                continue
            hit = self._cache.get(i)
            if hit is not None and hit[0] > now:
                by_id[i] = hit[1]
            else:
                misses.append(i)
        if misses:
            fetched = await self.store.mget_authors(misses)
            if len(self._cache) + len(misses) > self.cache_max:
                self._cache.clear()
            expiry = now + self.cache_ttl_s
            for i, a in zip(misses, fetched, strict=True):
                by_id[i] = a
                self._cache[i] = (expiry, a)
        return [(by_id.get(c.author_id), by_id.get(c.retweeted_user_id or 0)) for c in candidates]

    def update(self, candidate: PostCandidate, hydrated: Hydrated) -> None:
        author, retweeted = hydrated
        if author is not None:
            candidate.author_followers_count = author.follower_count
            candidate.author_screen_name = author.screen_name
        if retweeted is not None:
            candidate.retweeted_screen_name = retweeted.screen_name
