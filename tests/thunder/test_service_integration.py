"""Thunder end to end on the real broker: replay, SERVING, gRPC answers, restart, dead letters."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from confluent_kafka import Consumer, TopicPartition
from grpc_health.v1 import health_pb2, health_pb2_grpc

from foryou.core.kafka import consumer_config, make_producer
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from protos import events_pb2 as ev
from protos import thunder_pb2 as pb
from protos import thunder_pb2_grpc
from thunder.config import ThunderConfig
from thunder.request import make_request
from thunder.service import ThunderService

pytestmark = pytest.mark.integration
VIEWER = 5


def _publish(settings: Settings) -> dict[str, int]:
    now_ms = int(time.time() * 1000)
    topic = settings.topic("posts")
    producer = make_producer(settings)
    ids = {}

    def create(name: str, author: int, age_s: int, **kw: object) -> None:
        ts = now_ms - age_s * 1000
        pid = make_id(ts, len(ids))
        ids[name] = pid
        post = ev.Post(post_id=pid, author_id=author, created_at=ts // 1000, **kw)  # type: ignore[arg-type]
        producer.produce(topic, key=str(author).encode(), value=ev.PostEvent(create=post).SerializeToString())

    create("a1", 10, 300)
    create("a2", 10, 200, has_video=True)
    # garbage on author 11's partition, before its post: the consumer must get past it
    producer.produce(topic, key=b"11", value=b"\x08\x96\x01garbage-not-a-post-event\xff")
    create("b1", 11, 100)
    create("old", 11, 3 * 86_400)  # outside the 48 h retention
    create("c1", 12, 50)  # not followed
    create("gone", 10, 20)
    producer.produce(
        topic,
        key=b"10",
        value=ev.PostEvent(
            delete=ev.PostDelete(post_id=ids["gone"], author_id=10, deleted_at_ms=now_ms)
        ).SerializeToString(),
    )
    assert producer.flush(10) == 0
    return ids


async def _query(address: str) -> list[int]:
    async with grpc.aio.insecure_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        deadline = time.monotonic() + 30
        while True:
            st = await health.Check(
                health_pb2.HealthCheckRequest(service="foryou.thunder.InNetworkPostsService")
            )
            if st.status == health_pb2.HealthCheckResponse.SERVING:
                break
            assert time.monotonic() < deadline, "thunder never reported SERVING"
            await asyncio.sleep(0.05)
        stub = thunder_pb2_grpc.InNetworkPostsServiceStub(ch)
        resp = await stub.GetInNetworkPosts(make_request(VIEWER, [10, 11]), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetInNetworkPosts(
                pb.GetInNetworkPostsRequest(user_id=0, following_user_ids=[10]), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetInNetworkPosts(make_request(VIEWER, list(range(10_001))), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        video = await stub.GetInNetworkPosts(make_request(VIEWER, [10, 11], is_video_request=True), timeout=5)
        assert len(video.posts) == 1
        return [p.post_id for p in resp.posts]


async def _run_once(settings: Settings, live_post: int = 0) -> tuple[list[int], int]:
    svc = ThunderService(settings, ThunderConfig.default(catchup_max_lag=0))
    await svc.start()
    try:
        got = await _query(svc.address)
        # offsets are committed once applied: the whole topic (8 messages) is accounted for
        probe = Consumer(consumer_config(settings, svc.consumer.group_id))
        parts = [TopicPartition(settings.topic("posts"), p) for p in range(settings.partitions)]
        assert sum(max(tp.offset, 0) for tp in probe.committed(parts, timeout=10)) == 8
        probe.close()
        if live_post:  # serving while ingesting: a post published now shows up
            now_ms = int(time.time() * 1000)
            post = ev.Post(post_id=live_post, author_id=11, created_at=now_ms // 1000)
            producer = make_producer(settings)
            producer.produce(
                settings.topic("posts"), key=b"11", value=ev.PostEvent(create=post).SerializeToString()
            )
            producer.flush(10)
            deadline = time.monotonic() + 20
            while svc.store.get(live_post) is None:
                assert time.monotonic() < deadline, "live post never ingested"
                await asyncio.sleep(0.05)
        return got, svc.consumer.stats.malformed
    finally:
        await svc.stop()


def test_thunder_replays_serves_restarts_and_dead_letters(settings: Settings) -> None:
    ids = _publish(settings)
    expected = [ids["b1"], ids["a2"], ids["a1"]]
    first, malformed = asyncio.run(_run_once(settings))
    assert first == expected
    assert malformed == 1
    # a restart rebuilds the same state from the topic, then keeps ingesting while serving
    second, _ = asyncio.run(_run_once(settings, live_post=make_id(int(time.time() * 1000), 999)))
    assert second == expected

    dlq = Consumer(consumer_config(settings, f"{settings.topic_prefix}dlq-check"))
    dlq.subscribe([settings.dlq_topic(settings.topic("posts"))])
    msgs: list = []
    deadline = time.monotonic() + 30
    while len(msgs) < 2 and time.monotonic() < deadline:
        msgs += [m for m in dlq.consume(10, 0.5) if m.error() is None]
    dlq.close()
    assert len(msgs) == 2  # once per run
    assert all(m.value().startswith(b"\x08\x96\x01garbage") for m in msgs)
    headers = dict(msgs[0].headers())
    assert headers["dlq.topic"] == settings.topic("posts").encode() and b"decode" in headers["dlq.reason"]
    assert int(headers["dlq.offset"]) >= 0 and int(headers["dlq.partition"]) in range(settings.partitions)


def test_run_thunder_serves_until_stopped(settings: Settings) -> None:
    from thunder.service import run_thunder

    async def run() -> None:
        stop = asyncio.Event()
        cfg = ThunderConfig.default(catchup_max_lag=0, grpc_address="127.0.0.1:0")
        task = asyncio.create_task(run_thunder(settings, cfg, stop))
        await asyncio.sleep(0.5)
        assert not task.done()  # serving (empty topic: caught up at once)
        stop.set()
        await asyncio.wait_for(task, 10)  # stops gracefully once told to
        assert task.exception() is None

    asyncio.run(run())
