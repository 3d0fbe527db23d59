"""The gRPC face of Thunder over a real socket (no Kafka): answers, status codes, health and
reflection."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from foryou.core.grpc_server import GrpcServer
from protos import thunder_pb2 as pb
from protos import thunder_pb2_grpc
from thunder.config import ThunderConfig
from thunder.handler import InNetworkPostsHandler
from thunder.request import max_request_bytes
from thunder.servicer import SERVICE_NAME, InNetworkPostsServicer
from thunder.store import PostRecord, PostStore


async def _serve(qps_limit: float) -> GrpcServer:
    now = int(time.time())
    store = PostStore()
    store.insert(
        [PostRecord(1, 10, now - 100), PostRecord(2, 11, now - 50), PostRecord(3, 12, now - 10)], now_s=now
    )
    server = GrpcServer("127.0.0.1:0")
    handler = InNetworkPostsHandler(store, ThunderConfig.default(qps_limit=qps_limit))
    server.add(
        thunder_pb2_grpc.add_InNetworkPostsServiceServicer_to_server,
        InNetworkPostsServicer(handler),
        SERVICE_NAME,
    )
    await server.start(serving=True)
    return server


def test_get_in_network_posts_status_codes_health_and_reflection() -> None:
    async def run() -> None:
        server = await _serve(qps_limit=0)
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                st = await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=SERVICE_NAME)
                )
                assert st.status == health_pb2.HealthCheckResponse.SERVING
                stub = thunder_pb2_grpc.InNetworkPostsServiceStub(ch)
                resp = await stub.GetInNetworkPosts(
                    pb.GetInNetworkPostsRequest(user_id=5, following_user_ids=[10, 11], exclude_post_ids=[1]),
                    timeout=5,
                )
                assert [p.post_id for p in resp.posts] == [2]
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.GetInNetworkPosts(
                        pb.GetInNetworkPostsRequest(following_user_ids=[10]), timeout=5
                    )
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "user_id" in (err.value.details() or "")

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


def test_over_the_qps_limit_answers_resource_exhausted() -> None:
    async def run() -> None:
        server = await _serve(qps_limit=0.001)  # one request, then practically no refill
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = thunder_pb2_grpc.InNetworkPostsServiceStub(ch)
                req = pb.GetInNetworkPostsRequest(user_id=5, following_user_ids=[12])
                assert [p.post_id for p in (await stub.GetInNetworkPosts(req, timeout=5)).posts] == [3]
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.GetInNetworkPosts(req, timeout=5)
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            await server.stop(grace_s=0.5)

    asyncio.run(run())


BAD_REQUESTS = [
    (pb.GetInNetworkPostsRequest(user_id=0, following_user_ids=[10]), "user_id"),
    (
        pb.GetInNetworkPostsRequest(user_id=5, following_user_ids=[10, -4]),
        "following_user_ids must hold positive",
    ),
    (
        pb.GetInNetworkPostsRequest(user_id=5, following_user_ids=[10], exclude_post_ids=[0]),
        "exclude_post_ids",
    ),
    (
        pb.GetInNetworkPostsRequest(user_id=5, following_user_ids=[10], algorithm="top"),
        "unknown algorithm 'top'",
    ),
    (pb.GetInNetworkPostsRequest(user_id=5, following_user_ids=range(1, 10_002)), "at most 10000"),
]


def test_out_of_range_fields_are_invalid_argument_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def run() -> list[grpc.aio.AioRpcError]:
        server = await _serve(qps_limit=0)
        errors = []
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = thunder_pb2_grpc.InNetworkPostsServiceStub(ch)
                for req, _ in BAD_REQUESTS:
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.GetInNetworkPosts(req, timeout=5)
                    errors.append(err.value)
                ok = pb.GetInNetworkPostsRequest(user_id=5, following_user_ids=[10, 11], algorithm="latest")
                assert [p.post_id for p in (await stub.GetInNetworkPosts(ok, timeout=5)).posts] == [2, 1]
        finally:
            await server.stop(grace_s=0.5)
        return errors

    errors = asyncio.run(run())
    for e, (_, needle) in zip(errors, BAD_REQUESTS, strict=True):
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert needle in (e.details() or ""), e.details()
    lines = [r for r in caplog.records if "INVALID_ARGUMENT" in r.getMessage()]
    assert len(lines) == len(BAD_REQUESTS)  # one line per bad request
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_request_bodies_over_the_worst_valid_size_are_refused_unread() -> None:
    """The receive limit Thunder's server gets (`max_request_bytes`) admits the widest valid request
    and refuses a 10x larger body before reading it."""
    config = ThunderConfig.default(qps_limit=0)
    limit = max_request_bytes(config.max_input_list_size)
    widest = pb.GetInNetworkPostsRequest(
        user_id=(1 << 63) - 1,
        following_user_ids=[(1 << 63) - 1] * config.max_input_list_size,
        exclude_post_ids=[(1 << 63) - 1] * config.max_input_list_size,
        max_results=2**32 - 1,
        algorithm="default",
    )
    assert widest.ByteSize() <= limit < 1 << 20

    async def run() -> None:
        server = GrpcServer("127.0.0.1:0", max_receive_bytes=limit)
        handler = InNetworkPostsHandler(PostStore(), config)
        server.add(
            thunder_pb2_grpc.add_InNetworkPostsServiceServicer_to_server,
            InNetworkPostsServicer(handler),
            SERVICE_NAME,
        )
        await server.start(serving=True)
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = thunder_pb2_grpc.InNetworkPostsServiceStub(ch)
                assert len((await stub.GetInNetworkPosts(widest, timeout=10)).posts) == 0
                huge = pb.GetInNetworkPostsRequest(user_id=5, exclude_post_ids=[(1 << 62)] * 300_000)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.GetInNetworkPosts(huge, timeout=10)
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "larger than max" in (err.value.details() or "")
        finally:
            await server.stop(grace_s=0.5)

    asyncio.run(run())
