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

from foryou import user_state
from foryou.kafka import make_producer
from foryou.settings import Settings
from foryou.snowflake import make_id
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, save_two_tower
from phoenix.retrieval.service import RetrievalService
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
