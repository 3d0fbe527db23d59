"""phoenix.RetrievalService over gRPC (real servicer and handler, no Kafka): bad requests ->
INVALID_ARGUMENT, overload -> RESOURCE_EXHAUSTED, an expired deadline stops the work, the viewer's
own posts are excluded, health and reflection."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import torch
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from foryou.core.grpc_server import GrpcServer
from foryou.core.snowflake import make_id
from phoenix.retrieval.handler import RetrievalHandler
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel
from phoenix.retrieval.servicer import SERVICE_NAME, RetrievalServicer
from protos import phoenix_pb2, phoenix_pb2_grpc

NOW_MS = 1_760_000_000_000
VIEWER = 11


class SlowHandler(RetrievalHandler):
    """Holds each history read for `delay_s` and counts index searches."""

    delay_s = 0.0
    searches = 0

    def read_history(self, user_id: int) -> np.ndarray:
        time.sleep(self.delay_s)
        return super().read_history(user_id)

    def user_vector(self, *a: Any) -> np.ndarray:
        self.searches += 1  # the last stage before the search
        return super().user_vector(*a)


@pytest.fixture
def handler() -> Iterator[SlowHandler]:
    torch.manual_seed(0)
    h = SlowHandler(TwoTowerModel(TwoTowerConfig.tiny()), "v0")
    ids = np.array([make_id(NOW_MS + i) for i in range(60)], dtype=np.int64)
    authors = np.where(np.arange(60) < 10, VIEWER, 100 + np.arange(60) % 9)
    h.add_posts(ids, authors)
    yield h


def _serve(handler: RetrievalHandler, max_concurrent: int = 8) -> Any:
    async def go() -> GrpcServer:
        server = GrpcServer("127.0.0.1:0", max_concurrent)
        server.add(
            phoenix_pb2_grpc.add_RetrievalServiceServicer_to_server,
            RetrievalServicer(handler, "t"),
            SERVICE_NAME,
        )
        await server.start()
        return server

    return go()


def _hist(post_ids: list[int]) -> phoenix_pb2.ActionSequence:
    return phoenix_pb2.ActionSequence(
        items=[phoenix_pb2.HistoryItem(post_id=p, author_id=100, action_mask=2) for p in post_ids]
    )


def test_invalid_requests_and_own_posts(handler: SlowHandler) -> None:
    async def run() -> None:
        server = await _serve(handler)
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = phoenix_pb2_grpc.RetrievalServiceStub(ch)
                seq = _hist([make_id(NOW_MS + 20)])
                resp = await stub.Retrieve(
                    phoenix_pb2.RetrieveRequest(user_id=VIEWER, action_sequence=seq), timeout=5
                )
                assert len(resp.candidates) == 50  # top_k 0 -> default 1,000; 10 own posts excluded
                assert all(c.author_id != VIEWER for c in resp.candidates)
                scores = [c.score for c in resp.candidates]
                assert scores == sorted(scores, reverse=True)
                for req, needle in (
                    (phoenix_pb2.RetrieveRequest(user_id=0), "user_id"),
                    (phoenix_pb2.RetrieveRequest(user_id=-3, action_sequence=seq), "user_id"),
                    (phoenix_pb2.RetrieveRequest(user_id=VIEWER, top_k=10**6, action_sequence=seq), "top_k"),
                    (phoenix_pb2.RetrieveRequest(user_id=VIEWER, action_sequence=_hist([5, 0])), "item 1"),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as e:
                        await stub.Retrieve(req, timeout=5)
                    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, req
                    assert needle in (e.value.details() or "")
                refl = reflection_pb2_grpc.ServerReflectionStub(ch)
                names: list[str] = []
                async for r in refl.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")])
                ):
                    names += [s.name for s in r.list_services_response.service]
                assert SERVICE_NAME in names and "grpc.health.v1.Health" in names
        finally:
            await server.stop(grace_s=0.5)

    asyncio.run(run())


def test_overload_is_resource_exhausted(handler: SlowHandler) -> None:
    """max_concurrent_rpcs=1, each request held 0.3 s: of three simultaneous calls, the excess are
    answered RESOURCE_EXHAUSTED while one is served."""
    handler.delay_s = 0.3

    async def run() -> list[Any]:
        server = await _serve(handler, max_concurrent=1)
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = phoenix_pb2_grpc.RetrievalServiceStub(ch)
                req = phoenix_pb2.RetrieveRequest(user_id=VIEWER, top_k=5)
                return await asyncio.gather(
                    *[stub.Retrieve(req, timeout=10) for _ in range(3)], return_exceptions=True
                )
        finally:
            await server.stop(grace_s=0.5)

    results = asyncio.run(run())
    ok = [r for r in results if isinstance(r, phoenix_pb2.RetrieveResponse)]
    rejected = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(ok) >= 1 and len(ok[0].candidates) == 5
    assert rejected and all(r.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for r in rejected)


def test_expired_deadline_stops_the_work(handler: SlowHandler) -> None:
    """The history read outlasts the client's deadline: the client gets DEADLINE_EXCEEDED and the
    server abandons the call before the user tower and the search."""
    handler.delay_s = 0.4
    done = threading.Event()
    real = handler.read_history

    def read_then_signal(user_id: int) -> np.ndarray:
        try:
            return real(user_id)
        finally:
            done.set()

    handler.read_history = read_then_signal  # type: ignore[method-assign]

    async def run() -> None:
        server = await _serve(handler)
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = phoenix_pb2_grpc.RetrievalServiceStub(ch)
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.Retrieve(phoenix_pb2.RetrieveRequest(user_id=VIEWER), timeout=0.15)
                assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert await asyncio.to_thread(done.wait, 5)
                await asyncio.sleep(0.2)  # the server thread has passed the next deadline check
                assert handler.searches == 0
                # with enough time the same request is served
                handler.delay_s = 0.0
                resp = await stub.Retrieve(phoenix_pb2.RetrieveRequest(user_id=VIEWER, top_k=3), timeout=5)
                assert len(resp.candidates) == 3 and handler.searches == 1
        finally:
            await server.stop(grace_s=0.5)

    asyncio.run(run())


def test_handler_deadline_in_the_past_raises(handler: SlowHandler) -> None:
    with pytest.raises(TimeoutError, match="deadline"):
        handler.retrieve(VIEWER, None, deadline=time.monotonic() - 1)
    assert handler.searches == 0
