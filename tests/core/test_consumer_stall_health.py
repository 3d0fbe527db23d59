"""Services fed by a Kafka consumer stop reporting SERVING while the consumer cannot ingest (the
broker is killed) for longer than consumer_stall_s, keep answering with their responses flagged
stale (home_mixer then marks the feed degraded), and are SERVING again, with new events ingested,
once the broker is back (Tansu restarts empty: the consumers re-create the topics). Thunder, the
retrieval index updater and the Redis ingesters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from foryou.core.kafka import make_producer
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from foryou.core.user_state import social_key
from foryou.ingest.runner import AsyncIngestService
from home_mixer.clients.grpc_clients import GrpcRetrievalClient, GrpcThunderClient
from home_mixer.handler import degraded_entries
from home_mixer.query import ScoredPostsQuery, UserFeatures
from home_mixer.sources.phoenix_source import PhoenixSource
from home_mixer.sources.thunder_source import ThunderSource
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, save_two_tower
from phoenix.retrieval.service import RetrievalService
from phoenix.retrieval.servicer import SERVICE_NAME as RETRIEVAL_SERVICE
from protos import events_pb2 as ev
from protos import phoenix_pb2, phoenix_pb2_grpc, thunder_pb2, thunder_pb2_grpc
from thunder.config import ThunderConfig
from thunder.service import ThunderService
from thunder.servicer import SERVICE_NAME as THUNDER_SERVICE

pytestmark = pytest.mark.integration
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
VIEWER, AUTHOR = 5, 10


def _stall_settings(restart_settings: Settings) -> Settings:
    return restart_settings.replace(consumer_stall_s=1.0)


async def _until(cond: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await cond():
        assert time.monotonic() < deadline, f"{what} not within {timeout_s}s"
        await asyncio.sleep(0.1)


def _status_is(ch: grpc.aio.Channel, service: str, status: int) -> Callable[[], Awaitable[bool]]:
    stub = health_pb2_grpc.HealthStub(ch)

    async def check() -> bool:
        r = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return bool(r.status == status)

    return check


def _publish_posts(settings: Settings, n: int, seq0: int) -> list[int]:
    now = int(time.time() * 1000)
    ids = [make_id(now - 60_000 + i, seq0 + i) for i in range(n)]
    producer = make_producer(settings)
    for p in ids:
        post = ev.Post(post_id=p, author_id=AUTHOR, created_at=(now - 60_000) // 1000)
        producer.produce(
            settings.topic(settings.posts_topic),
            key=str(AUTHOR).encode(),
            value=ev.PostEvent(create=post).SerializeToString(),
        )
    assert producer.flush(15) == 0
    return ids


async def _restart_and_publish(broker: Any, settings: Settings, seq0: int) -> list[int]:
    """Broker killed meanwhile: start it again (same port, no topics), then publish new posts."""
    await asyncio.sleep(1.0)  # down for a while: librdkafka gives up on the old connections
    await asyncio.to_thread(broker.start)
    return await asyncio.to_thread(_publish_posts, settings, 3, seq0)


def test_thunder_not_serving_and_stale_while_it_cannot_ingest(
    restartable_broker: Any, restart_settings: Settings
) -> None:
    s = _stall_settings(restart_settings)
    first = _publish_posts(s, 4, 0)
    req = thunder_pb2.GetInNetworkPostsRequest(user_id=VIEWER, following_user_ids=[AUTHOR])

    async def run() -> None:
        svc = ThunderService(s, ThunderConfig.default(grpc_address="127.0.0.1:0"))
        await svc.start()
        client = GrpcThunderClient(svc.address, timeout_s=5)
        try:
            await svc.wait_caught_up(30)
            async with grpc.aio.insecure_channel(svc.address) as ch:
                stub = thunder_pb2_grpc.InNetworkPostsServiceStub(ch)

                async def posts() -> tuple[set[int], bool]:
                    r = await stub.GetInNetworkPosts(req, timeout=5)
                    return {p.post_id for p in r.posts}, r.stale

                await _until(_status_is(ch, THUNDER_SERVICE, SERVING), "SERVING after replay")
                assert await posts() == (set(first), False)

                restartable_broker.stop()
                await _until(_status_is(ch, THUNDER_SERVICE, NOT_SERVING), "NOT_SERVING while stalled")
                assert await posts() == (set(first), True)  # still answering, flagged stale
                # home_mixer's Thunder source over gRPC: the feed is marked degraded
                query = ScoredPostsQuery(
                    viewer_id=VIEWER, user_features=UserFeatures(following=frozenset({AUTHOR}))
                )
                candidates = await ThunderSource(client).get_candidates(query)
                assert {c.post_id for c in candidates} == set(first)
                assert degraded_entries(query, [], False) == ["thunder_stale"]

                then = await _restart_and_publish(restartable_broker, s, 100)
                await _until(_status_is(ch, THUNDER_SERVICE, SERVING), "SERVING once ingesting again")

                async def has_new_posts() -> bool:
                    got, stale = await posts()
                    return set(then) <= got and not stale

                await _until(has_new_posts, "new posts served, not stale")
        finally:
            await client.close()
            await svc.stop()

    asyncio.run(run())


def test_retrieval_not_serving_and_stale_while_its_index_cannot_ingest(
    restartable_broker: Any, restart_settings: Settings, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    save_two_tower(model_dir, TwoTowerModel(TwoTowerConfig.tiny()))
    s = _stall_settings(restart_settings)
    first = _publish_posts(s, 4, 0)
    req = phoenix_pb2.RetrieveRequest(user_id=VIEWER, top_k=100, action_sequence=phoenix_pb2.ActionSequence())

    async def run() -> None:
        svc = RetrievalService(s, str(model_dir))
        await svc.start()
        client = GrpcRetrievalClient(svc.address, timeout_s=5)
        try:
            await svc.wait_caught_up(30)
            async with grpc.aio.insecure_channel(svc.address) as ch:
                stub = phoenix_pb2_grpc.RetrievalServiceStub(ch)

                async def retrieved() -> tuple[set[int], bool]:
                    r = await stub.Retrieve(req, timeout=5)
                    return {c.post_id for c in r.candidates}, r.stale

                await _until(_status_is(ch, RETRIEVAL_SERVICE, SERVING), "SERVING after replay")
                assert await retrieved() == (set(first), False)

                restartable_broker.stop()
                await _until(_status_is(ch, RETRIEVAL_SERVICE, NOT_SERVING), "NOT_SERVING while stalled")
                assert await retrieved() == (set(first), True)
                query = ScoredPostsQuery(viewer_id=VIEWER, user_features=UserFeatures())
                await PhoenixSource(client).get_candidates(query)
                assert degraded_entries(query, [], False) == ["retrieval_stale"]

                then = await _restart_and_publish(restartable_broker, s, 100)
                await _until(_status_is(ch, RETRIEVAL_SERVICE, SERVING), "SERVING once ingesting again")

                async def has_new_posts() -> bool:
                    got, stale = await retrieved()
                    return set(then) <= got and not stale

                await _until(has_new_posts, "new posts retrieved, not stale")
        finally:
            await client.close()
            await svc.stop()

    asyncio.run(run())


def _follow(settings: Settings, user: int, target: int) -> None:
    producer = make_producer(settings)
    e = ev.UserEvent(user_id=user, target_user_id=target, type=ev.USER_EVENT_FOLLOW)
    producer.produce(
        settings.topic(settings.user_events_topic), key=str(user).encode(), value=e.SerializeToString()
    )
    assert producer.flush(15) == 0


def test_ingest_not_serving_while_an_ingester_cannot_ingest(
    restartable_broker: Any, restart_settings: Settings
) -> None:
    s = _stall_settings(restart_settings)
    r = redis.Redis.from_url(s.redis_url)
    following = social_key("following", VIEWER, s.redis_prefix)
    _follow(s, VIEWER, 11)

    async def run() -> None:
        svc = AsyncIngestService(s, health_address="127.0.0.1:0")
        await svc.start()
        try:
            async with grpc.aio.insecure_channel(svc.address) as ch:
                await _until(_status_is(ch, "", SERVING), "SERVING once started")

                async def follows(*targets: int) -> bool:
                    return r.smembers(following) == {str(t).encode() for t in targets}

                await _until(lambda: follows(11), "first follow ingested")

                restartable_broker.stop()
                await _until(_status_is(ch, "", NOT_SERVING), "NOT_SERVING while stalled")
                assert svc.service.problems() == [c.name for c in svc.service.consumers]
                assert svc.watch.stale

                await asyncio.sleep(1.0)
                await asyncio.to_thread(restartable_broker.start)
                await asyncio.to_thread(_follow, s, VIEWER, 12)
                await _until(_status_is(ch, "", SERVING), "SERVING once ingesting again")
                await _until(lambda: follows(11, 12), "new follow ingested")
                assert not svc.watch.stale
        finally:
            await svc.stop()
            r.close()

    asyncio.run(run())
