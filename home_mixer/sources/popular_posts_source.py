"""Out-of-network popular posts (reference PopularPostsSource + popular-posts job, Oct-7): one global
list, the same for every viewer, of the posts of the last 24 h ranked by their views projected to
24 h (views × (1 − e^(−λ·24)) / (1 − e^(−λ·max(age_h, 0.5))), λ = ln 2 / 8 h), at most 5 per
author, 500 in all (ties: the higher post id first). The views come from the per-post engagement
counts that foryou.ingest's EngagementCountsIngester keeps in Redis from the `engagements` topic
(foryou.core.engagement_counts). The list is an in-process snapshot, loaded on first use and then
reloaded in the background at most every 60 s (like the reference's in-process copy of its stored
list); per request the viewer's seen ids are
dropped and the first `popular_posts_max_results` (500) emitted, labelled ForYouPhoenixRetrieval as
in the reference. The list's order is not a ranking signal: Phoenix ranks these like any other."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from candidate_pipeline import Source
from foryou.core.engagement_counts import HOUR_MS, POPULAR_WINDOW_H, projected_views
from foryou.core.snowflake import timestamp_ms
from home_mixer.candidate import PostCandidate
from home_mixer.clients import UserStateClient
from home_mixer.query import ScoredPostsQuery

SERVED_TYPE = "ForYouPhoenixRetrieval"
REFRESH_S = 60.0
PER_AUTHOR = 5
LIST_SIZE = 500


def popular_list(
    rows: list[tuple[int, int, int]], now_ms: int, per_author: int = PER_AUTHOR, size: int = LIST_SIZE
) -> list[tuple[int, int]]:
    """(post, author) of the global list from (post, author, views) rows (see module doc)."""
    scored = []
    for post, author, views in rows:
        age_h = (now_ms - timestamp_ms(post)) / HOUR_MS
        if age_h > POPULAR_WINDOW_H:
            continue
        scored.append((projected_views(views, max(age_h, 0.0)), post, author))
    scored.sort(key=lambda r: (-r[0], -r[1]))
    taken: dict[int, int] = defaultdict(int)
    out = []
    for _, post, author in scored:
        if taken[author] >= per_author:
            continue
        taken[author] += 1
        out.append((post, author))
        if len(out) >= size:
            break
    return out


class PopularPostsSource(Source[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.3

    def __init__(self, store: UserStateClient, refresh_s: float = REFRESH_S) -> None:
        self.store, self.refresh_s = store, refresh_s
        self._list: list[tuple[int, int]] = []
        self._loaded = False
        self._expires = -1.0
        self._task: asyncio.Future[None] | None = None

    def enable(self, query: ScoredPostsQuery) -> bool:
        return not query.in_network_only and query.params.enable_popular_posts_source

    async def snapshot(self, now_ms: int) -> list[tuple[int, int]]:
        """The global list: loaded on first use, then reloaded in the background at most every
        `refresh_s` (requests meanwhile read the previous list, as the reference's snapshot)."""
        if time.monotonic() >= self._expires and (self._task is None or self._task.done()):
            self._expires = time.monotonic() + self.refresh_s  # one reload per period, even if it fails
            self._task = asyncio.ensure_future(self._reload(now_ms))
            if not self._loaded:
                await asyncio.shield(self._task)
        return self._list

    async def _reload(self, now_ms: int) -> None:
        hour = now_ms // HOUR_MS
        hours = list(range(hour - POPULAR_WINDOW_H, hour + 1))
        # an hour's bucket holds posts of one age (±1 h): its most viewed LIST_SIZE are enough
        rows = await self.store.popular_posts(hours, LIST_SIZE)
        self._list = await asyncio.to_thread(popular_list, rows, now_ms)
        self._loaded = True

    async def get_candidates(self, query: ScoredPostsQuery) -> list[PostCandidate]:
        seen, name, limit = query.seen_ids, self.name, query.params.popular_posts_max_results
        out = []
        for post, author in await self.snapshot(query.now_ms):
            if post in seen:
                continue
            out.append(PostCandidate(post_id=post, author_id=author, source=name, served_type=SERVED_TYPE))
            if len(out) >= limit:
                break
        return out
