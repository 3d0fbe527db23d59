"""One MGET of post core data per request, shared by the hydrators that read a post's fields
(core data, video duration, subscription): the first caller starts it, the others await it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from home_mixer.clients import UserStateClient
from protos import events_pb2


class PostLookup:
    def __init__(self, store: UserStateClient) -> None:
        self.store = store
        self._task: asyncio.Task[dict[int, events_pb2.Post | None]] | None = None
        self._ids: tuple[int, ...] = ()
        # per-candidate-list derived results: (the list it was computed for, the shared future)
        self.memo: dict[str, tuple[object, asyncio.Future[Any]]] = {}

    async def get(self, post_ids: Sequence[int]) -> dict[int, events_pb2.Post | None]:
        ids = tuple(dict.fromkeys(post_ids))
        if self._task is None or (ids != self._ids and not set(ids) <= set(self._ids)):
            self._ids = ids
            self._task = asyncio.ensure_future(self._fetch(ids))
        # shield: one hydrator timing out must not cancel the lookup the others share
        return await asyncio.shield(self._task)

    async def _fetch(self, ids: tuple[int, ...]) -> dict[int, events_pb2.Post | None]:
        posts = await self.store.mget_posts(list(ids))
        return dict(zip(ids, posts, strict=True))
