"""The user-state client over Redis (the ingesters' key layout)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from foryou.core import engagement_counts as ec
from foryou.core import redis_client, user_state
from foryou.core.user_state import AuthorData, SocialGraph
from protos import events_pb2, phoenix_pb2


def served_key(viewer_id: int, prefix: str) -> str:
    return f"{prefix}served:{viewer_id}"


class RedisUserState:
    """UserStateClient over the ingesters' key layout (foryou.core.user_state). Short socket timeouts so a
    dead Redis fails fast and the pipeline degrades instead of hanging."""

    def __init__(
        self, redis_url: str, prefix: str = user_state.DEFAULT_PREFIX, timeout_s: float = 0.25
    ) -> None:
        # any FORYOU_REDIS_URL form: one server, redis+cluster:// or redis+sentinel://
        self.client = redis_client.connect_async(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self.prefix = prefix
        self._reader = user_state.AsyncUserStateReader(self.client, prefix)

    async def read_social_graph(self, user_id: int) -> SocialGraph:
        return await self._reader.read_social_graph(user_id)

    async def read_action_sequence(self, user_id: int) -> phoenix_pb2.ActionSequence:
        return user_state.action_sequence_to_proto(await self._reader.read_action_sequence(user_id))

    async def mget_posts(self, post_ids: Sequence[int]) -> list[events_pb2.Post | None]:
        return await self._reader.mget_posts(post_ids)

    async def mget_authors(self, author_ids: Sequence[int]) -> list[AuthorData | None]:
        return await self._reader.mget_authors(author_ids)

    async def authors_blocking(self, viewer_id: int, author_ids: Sequence[int]) -> set[int]:
        ids = list(dict.fromkeys(author_ids))
        if not ids:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for a in ids:
            pipe.sismember(user_state.social_key("blocked", a, self.prefix), str(viewer_id))
        res = await pipe.execute()
        return {a for a, hit in zip(ids, res, strict=True) if hit}

    async def add_served(self, viewer_id: int, post_ids: Sequence[int], ttl_s: int, max_n: int) -> None:
        if not post_ids:
            return
        key = served_key(viewer_id, self.prefix)
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(key, {str(p): now_ms for p in post_ids})
        pipe.zremrangebyscore(key, "-inf", now_ms - ttl_s * 1000)  # entries older than the window
        pipe.zremrangebyrank(key, 0, -max_n - 1)  # keep the newest max_n
        pipe.expire(key, ttl_s)
        await pipe.execute()

    async def read_served(self, viewer_id: int) -> list[int]:
        # members only (no scores), as bytes: this client does not decode responses
        members = cast(list[bytes], await self.client.zrange(served_key(viewer_id, self.prefix), 0, -1))
        return [int(x) for x in members]

    async def followed_by(self, viewer_id: int, author_ids: Sequence[int]) -> set[int]:
        ids = list(dict.fromkeys(author_ids))
        if not ids:
            return set()
        key = user_state.social_key("followers", viewer_id, self.prefix)
        hits = await self.client.smismember(key, [str(a) for a in ids])
        return {a for a, hit in zip(ids, hits, strict=True) if hit}

    async def mget_engagement_counts(self, post_ids: Sequence[int]) -> list[tuple[int, int] | None]:
        if not post_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for p in post_ids:
            pipe.hmget(ec.counts_key(p, self.prefix), "views", "favs")
        out: list[tuple[int, int] | None] = []
        for views, favs in await pipe.execute():
            out.append(None if views is None and favs is None else (int(views or 0), int(favs or 0)))
        return out

    async def popular_posts(self, hours: Sequence[int], per_hour: int) -> list[tuple[int, int, int]]:
        if not hours or per_hour <= 0:
            return []
        pipe = self.client.pipeline(transaction=False)
        for h in hours:
            pipe.zrevrange(ec.popular_key(h, self.prefix), 0, per_hour - 1, withscores=True)
        out = []
        for rows in await pipe.execute():
            for member, views in rows:
                post, author = ec.parse_popular_member(member)
                out.append((post, author, int(views)))
        return out

    async def close(self) -> None:
        await self.client.aclose()
