"""run_ingesters (blocking, stop_event) and the async adapter against the real broker and Redis."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis

from foryou.core import user_state as us
from foryou.core.kafka import make_producer
from foryou.core.settings import Settings
from foryou.ingest.runner import AsyncIngestService, run_ingesters, wait_caught_up
from protos import events_pb2 as ev

pytestmark = pytest.mark.integration


def _wait(cond, timeout_s: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_run_ingesters_until_stopped_then_async_service(settings: Settings) -> None:
    r = redis.Redis.from_url(settings.redis_url)
    p = settings.redis_prefix
    prod = make_producer(settings)
    ue = ev.UserEvent(user_id=3, type=ev.USER_EVENT_FOLLOW, target_user_id=9, timestamp_ms=1)
    prod.produce(settings.topic(settings.user_events_topic), key=b"3", value=ue.SerializeToString())
    prod.flush(10)

    stop = threading.Event()
    t = threading.Thread(target=run_ingesters, args=(settings, stop))
    t.start()
    try:
        assert _wait(lambda: us.read_social_graph(r, 3, p).following == {9})
        assert us.mget_authors(r, [9], p) == [us.AuthorData(9, "", 1)]
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive()

    # the async adapter resumes from the committed offsets of the same groups
    post = ev.Post(post_id=(1 << 22) * 10**6, author_id=9, text="hello")
    prod.produce(
        settings.topic(settings.posts_topic), key=b"9", value=ev.PostEvent(create=post).SerializeToString()
    )
    prod.flush(10)

    async def run() -> None:
        svc = AsyncIngestService(settings)
        await svc.start()
        try:
            assert await asyncio.to_thread(wait_caught_up, svc, 30.0)
            assert svc.caught_up()
            assert us.mget_posts(r, [post.post_id], p) == [post]
            assert svc.service.stats()["social-graph"].applied == 0  # nothing replayed
        finally:
            await svc.stop()

    asyncio.run(run())
