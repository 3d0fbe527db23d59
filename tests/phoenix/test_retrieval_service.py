"""Retrieval service end to end on the real broker and Redis: replay -> SERVING, a published post
becomes retrievable, a deleted one stops being returned, own posts excluded, history from Redis,
bad input -> INVALID_ARGUMENT, authenticated reload."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from foryou.core import user_state
from foryou.core.kafka import make_producer
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from phoenix.retrieval.index import read_snapshot_meta
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, save_two_tower
from phoenix.retrieval.service import INDEX_POSTS, RetrievalService, RetrievalServiceConfig
from phoenix.retrieval.servicer import SERVICE_NAME
from protos import events_pb2 as ev
from protos import phoenix_pb2, phoenix_pb2_grpc

pytestmark = pytest.mark.integration
USER = 5


def _publish(settings: Settings, events: list[ev.PostEvent]) -> None:
    producer = make_producer(settings)
    for e in events:
        post_id = e.create.post_id if e.WhichOneof("event") == "create" else e.delete.post_id
        producer.produce(settings.topic("posts"), key=str(post_id).encode(), value=e.SerializeToString())
    assert producer.flush(10) == 0


def _create(post_id: int, author_id: int) -> ev.PostEvent:
    return ev.PostEvent(create=ev.Post(post_id=post_id, author_id=author_id, created_at=post_id))


async def _retrieve(stub: phoenix_pb2_grpc.RetrievalServiceStub, **kw: object) -> list[tuple[int, int]]:
    resp = await stub.Retrieve(phoenix_pb2.RetrieveRequest(user_id=USER, top_k=500, **kw), timeout=10)
    return [(c.post_id, c.author_id) for c in resp.candidates]


async def _until(pred, what: str, timeout_s: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not await pred():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def test_live_index_on_real_broker(settings: Settings, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    save_two_tower(model_dir, TwoTowerModel(TwoTowerConfig.tiny()))
    now = int(time.time() * 1000)
    old = make_id(now - 3 * 24 * 3_600_000)  # beyond the 48 h retention: never indexed
    ids = [make_id(now - 60_000 + i) for i in range(40)]
    authors = [USER if i < 5 else 100 + i % 7 for i in range(40)]
    _publish(settings, [_create(p, a) for p, a in zip(ids, authors, strict=True)] + [_create(old, 100)])
    # history in Redis for the user (the request carries none)
    seq = np.zeros(3, dtype=user_state.SEQ_DTYPE)
    seq["post_id"], seq["author_id"], seq["action_mask"] = ids[10:13], authors[10:13], 2
    r = redis.Redis.from_url(settings.redis_url)
    r.set(user_state.seq_key(USER, settings.redis_prefix), user_state.encode_sequence(seq))
    settings = settings.replace(admin_token="s3cret")

    async def run() -> None:
        svc = RetrievalService(settings, str(model_dir))
        await svc.start()
        try:
            await svc.wait_caught_up(30)
            async with grpc.aio.insecure_channel(svc.address) as ch:
                health = health_pb2_grpc.HealthStub(ch)

                async def serving() -> bool:
                    st = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
                    return st.status == health_pb2.HealthCheckResponse.SERVING

                await _until(serving, "never SERVING")
                stub = phoenix_pb2_grpc.RetrievalServiceStub(ch)
                got = await _retrieve(stub)
                assert {p for p, _ in got} == set(ids[5:])  # own posts and the expired one excluded
                # the Redis history is used when the request has none
                explicit = phoenix_pb2.ActionSequence()
                explicit.CopyFrom(user_state.action_sequence_to_proto(seq))
                assert got == await _retrieve(stub, action_sequence=explicit)
                assert got != await _retrieve(stub, action_sequence=phoenix_pb2.ActionSequence())

                new = make_id(int(time.time() * 1000))
                _publish(settings, [_create(new, 777)])

                async def present() -> bool:
                    return (new, 777) in await _retrieve(stub)

                await _until(present, "published post never retrievable")
                _publish(settings, [ev.PostEvent(delete=ev.PostDelete(post_id=new))])

                async def gone() -> bool:
                    return new not in {p for p, _ in await _retrieve(stub)}

                await _until(gone, "deleted post still returned")

                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.Retrieve(phoenix_pb2.RetrieveRequest(user_id=0), timeout=5)
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.ReloadModel(phoenix_pb2.ReloadModelRequest(path=str(model_dir)), timeout=5)
                assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
                torch.manual_seed(1)
                save_two_tower(tmp_path / "m2", TwoTowerModel(TwoTowerConfig.tiny()), step=1)
                resp = await stub.ReloadModel(
                    phoenix_pb2.ReloadModelRequest(path=str(tmp_path / "m2")),
                    metadata=[("authorization", "Bearer s3cret")],
                    timeout=30,
                )
                assert resp.model_version.startswith("retrieval-1-")
                after = await _retrieve(stub)
                assert {p for p, _ in after} == set(ids[5:])  # same posts, re-embedded
        finally:
            await svc.stop()

    asyncio.run(run())


def test_snapshot_restart_replays_topic(settings: Settings, tmp_path: Path) -> None:
    """Stop writes a snapshot; a restart loads it (nothing re-embedded), replays the topic, honours
    a delete published while it was down and drops an indexed post the topic never had."""
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    save_two_tower(model_dir, TwoTowerModel(TwoTowerConfig.tiny()))
    now = int(time.time() * 1000)
    ids = [make_id(now - 60_000 + i) for i in range(30)]
    _publish(settings, [_create(p, 100 + i % 5) for i, p in enumerate(ids)])
    cfg = RetrievalServiceConfig(snapshot_interval_s=0)  # only at stop
    hist = np.zeros(2, dtype=user_state.SEQ_DTYPE)
    hist["post_id"], hist["author_id"], hist["action_mask"] = ids[:2], 100, 2
    stray = make_id(now - 1_000)  # indexed directly, never published

    async def run() -> tuple[list[tuple[int, int, float]], RetrievalService]:
        svc = RetrievalService(settings, str(model_dir), config=cfg)
        await svc.start()
        try:
            await svc.wait_caught_up(30)
            first = svc.handler.retrieve(USER, hist, top_k=100)
            assert not svc.snapshot_loaded and svc.updater.embedded == 30
            svc.handler.add_posts(np.array([stray]), np.array([999]))
        finally:
            await svc.stop()
        return first, svc

    first, svc1 = asyncio.run(run())
    meta = read_snapshot_meta(svc1.snapshot_dir)
    assert meta["posts"] == 31 and meta["model_version"] == svc1.handler.model_version
    assert str(svc1.snapshot_dir).startswith(settings.data_dir)
    _publish(settings, [ev.PostEvent(delete=ev.PostDelete(post_id=ids[7]))])  # while it is down

    async def restart() -> tuple[list[tuple[int, int, float]], RetrievalService]:
        svc = RetrievalService(settings, str(model_dir), config=cfg)
        await svc.start()
        try:
            assert svc.snapshot_loaded and stray in svc.handler.index
            await svc.wait_caught_up(30)
            return svc.handler.retrieve(USER, hist, top_k=100), svc
        finally:
            await svc.stop()

    second, svc2 = asyncio.run(restart())
    assert svc2.updater.embedded == 0  # every replayed create was already in the snapshot
    assert INDEX_POSTS._value.get() == 29  # the gauge the service exports
    assert [p for p, _, _ in second] == [p for p, _, _ in first if p != ids[7]]
    assert len(second) == 29 and stray not in {p for p, _, _ in second}
    np.testing.assert_allclose([s for *_, s in second], [s for p, _, s in first if p != ids[7]], rtol=1e-5)

    # a checkpoint with another version ignores the snapshot and rebuilds from the topic
    torch.manual_seed(3)
    save_two_tower(tmp_path / "m2", TwoTowerModel(TwoTowerConfig.tiny()), step=2)

    async def other_model() -> RetrievalService:
        svc = RetrievalService(settings, str(tmp_path / "m2"), config=cfg)
        await svc.start()
        try:
            await svc.wait_caught_up(30)
            assert len(svc.handler.index) == 29
        finally:
            await svc.stop()
        return svc

    svc3 = asyncio.run(other_model())
    assert not svc3.snapshot_loaded and svc3.updater.embedded == 29
