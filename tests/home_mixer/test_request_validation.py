"""Malformed requests (issue 7): undecodable bytes on every method of every gRPC service, on both
server kinds (grpc.aio and the thread-pool server the ranker uses), and every out-of-range field of
the home_mixer request are answered INVALID_ARGUMENT with a message and one log line, never a
traceback. Long id lists a client may legitimately send are truncated, not rejected (issue 19)."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from foryou.core.grpc_server import GrpcServer, finish_sync_server, make_sync_server
from foryou.core.settings import Settings
from foryou.core.user_state import SocialGraph
from home_mixer.clients import HomeMixerClients
from home_mixer.engagement_log_handler import EngagementLimits
from home_mixer.handler import ScoredPostsHandler
from home_mixer.params import DEFAULT_LIMITS, DEFAULT_PARAMS, RequestLimits
from home_mixer.pipeline import ScoredPostsPipeline
from home_mixer.query import InvalidQuery, ScoredPostsQuery, validate_request
from home_mixer.service import HomeMixerConfig, HomeMixerService, max_request_bytes
from protos import (
    events_pb2,
    home_mixer_pb2,
    home_mixer_pb2_grpc,
    phoenix_pb2,
    phoenix_pb2_grpc,
    thunder_pb2,
    thunder_pb2_grpc,
)

Req = home_mixer_pb2.GetScoredPostsRequest

# ---- home_mixer request fields -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (Req(viewer_id=0), "viewer_id"),
        (Req(viewer_id=-5), "viewer_id"),
        (Req(viewer_id=1, seen_ids=[3, 0]), "seen_ids"),
        (Req(viewer_id=1, seen_ids=[-(1 << 63)]), "seen_ids"),
        (Req(viewer_id=1, served_ids=[7, -1]), "served_ids"),
        (Req(viewer_id=1, client_app_id=-2), "client_app_id"),
        (Req(viewer_id=1, country_code="x" * 17), "country_code"),
        (Req(viewer_id=1, language_code="é" * 17), "language_code"),
        (Req(viewer_id=1, seen_ids=range(1, 60_001), served_ids=range(1, 50_001)), "seen_ids \\+ served_ids"),
    ],
)
def test_out_of_range_fields_are_invalid(req: home_mixer_pb2.GetScoredPostsRequest, field: str) -> None:
    with pytest.raises(InvalidQuery, match=field):
        validate_request(req)


def test_edge_values_are_valid() -> None:
    validate_request(Req(viewer_id=(1 << 63) - 1, seen_ids=[(1 << 63) - 1], country_code="x" * 16))


def test_long_id_lists_keep_the_newest() -> None:
    n = DEFAULT_LIMITS.max_seen_ids
    q = ScoredPostsQuery.from_request(Req(viewer_id=1, seen_ids=range(1, n + 1001), served_ids=[9, 9, 8]))
    assert q.seen_ids == frozenset(range(1001, n + 1001))  # the largest snowflakes are the newest
    assert q.served_ids == {8, 9}


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"result_size": "-5"}, "result_size"),
        ({"result_size": "51"}, "result_size"),  # more than the 50 the selector keeps
        ({"top_k_candidates_to_select": "1000000000"}, "top_k_candidates_to_select"),
        ({"thunder_max_results": "-1"}, "thunder_max_results"),
        ({"favorite_weight": "nan"}, "favorite_weight"),
        ({"report_weight": "-inf"}, "report_weight"),
        ({"served_history_ttl_s": "0"}, "served_history_ttl_s"),
        ({"max_post_age_s": "99999999"}, "max_post_age_s"),
        ({"nope": "1"}, "nope"),
        ({"enable_phoenix_source": "maybe"}, "enable_phoenix_source"),
    ],
)
def test_out_of_range_param_overrides(overrides: dict[str, str], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DEFAULT_PARAMS.with_overrides(overrides)


def test_in_range_param_overrides_and_defaults() -> None:
    DEFAULT_PARAMS.check_ranges()
    p = DEFAULT_PARAMS.with_overrides({"result_size": "50", "top_k_candidates_to_select": "100"})
    assert (p.result_size, p.top_k_candidates_to_select) == (50, 100)
    assert math.isfinite(DEFAULT_PARAMS.with_overrides({"report_weight": "-500"}).report_weight)


def test_truncated_lists_reach_thunder_within_its_limits(fakes: SimpleNamespace) -> None:
    """A viewer following 12,000 accounts (Thunder takes at most 10,000) and a client sending 6,000
    seen ids: both truncated, the request is served, in-network included."""
    store = fakes.UserState()
    following = frozenset(range(10, 12_010))
    store.graphs[1] = SocialGraph(1, following=following)
    light = []
    for i in range(20):
        p = fakes.pid(age_s=60 + i, seq=i)
        store.posts[p] = events_pb2.Post(post_id=p, author_id=10 + i, text=f"post {i}")
        light.append(thunder_pb2.LightPost(post_id=p, author_id=10 + i))
    thunder = fakes.Thunder(light)
    clients = HomeMixerClients(thunder, fakes.Retrieval([]), fakes.Ranker(), store)
    handler = ScoredPostsHandler(ScoredPostsPipeline(clients), clients)
    seen = list(range(1, 6_001))
    resp = asyncio.run(handler.get_scored_posts(Req(viewer_id=1, seen_ids=seen)))
    assert len(resp.scored_posts) == 20 and all(p.in_network for p in resp.scored_posts)
    sent = thunder.requests[0]
    assert list(sent.following_user_ids) == sorted(following)[:10_000]
    assert list(sent.exclude_post_ids) == seen[-5_000:]


# ---- over gRPC: one log line, no traceback ------------------------------------------------------


def _problems(records: list[logging.LogRecord]) -> list[str]:
    """Log records that must never appear for a client's bad input: tracebacks, grpc's own errors."""
    out = []
    for r in records:
        text = r.getMessage()
        if r.exc_info or r.exc_text or "Traceback" in text or r.name.startswith("grpc"):
            out.append(f"{r.name}: {text[:200]}")
    return out


def _world(fakes: SimpleNamespace) -> HomeMixerClients:
    store = fakes.UserState()
    store.graphs[1] = SocialGraph(1, following=frozenset({10}))
    return HomeMixerClients(fakes.Thunder([]), fakes.Retrieval([]), fakes.Ranker(), store)


BAD_QUERIES = [
    Req(viewer_id=0),
    Req(viewer_id=-1),
    Req(viewer_id=1, seen_ids=[-5]),
    Req(viewer_id=1, served_ids=[0]),
    Req(viewer_id=1, client_app_id=-7),
    Req(viewer_id=1, country_code="c" * 40),
]
BAD_OVERRIDES = [{"result_size": "-5"}, {"result_size": "99999"}, {"oon_weight_factor": "inf"}, {"x": "1"}]


def test_out_of_range_requests_over_grpc(fakes: SimpleNamespace, caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> list[grpc.aio.AioRpcError]:
        svc = HomeMixerService(Settings(), _world(fakes), HomeMixerConfig(publish_served=False))
        await svc.start()
        errors = []
        try:
            async with grpc.aio.insecure_channel(svc.address) as ch:
                stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
                calls: list[Any] = [stub.GetScoredPosts(q, timeout=5) for q in BAD_QUERIES]
                calls += [
                    stub.GetDebugScoredPosts(home_mixer_pb2.GetDebugScoredPostsRequest(query=q), timeout=5)
                    for q in BAD_QUERIES
                ]
                calls += [
                    stub.GetDebugScoredPosts(
                        home_mixer_pb2.GetDebugScoredPostsRequest(query=Req(viewer_id=1), param_overrides=o),
                        timeout=5,
                    )
                    for o in BAD_OVERRIDES
                ]
                for call in calls:
                    with pytest.raises(grpc.aio.AioRpcError) as e:
                        await call
                    errors.append(e.value)
                ok = await stub.GetScoredPosts(Req(viewer_id=1), timeout=5)  # and the service still serves
                assert ok.request_id
        finally:
            await svc.stop()
        return errors

    caplog.set_level(logging.INFO)
    errors = asyncio.run(go())
    assert len(errors) == 2 * len(BAD_QUERIES) + len(BAD_OVERRIDES)
    for e in errors:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert e.details()  # says which field and why
    assert _problems(caplog.records) == []
    invalid_lines = [r for r in caplog.records if "INVALID_ARGUMENT" in r.getMessage()]
    assert len(invalid_lines) == len(errors)  # one line per malformed request


def _services() -> list[Any]:
    return [
        home_mixer_pb2.DESCRIPTOR.services_by_name["ScoredPostsService"],
        thunder_pb2.DESCRIPTOR.services_by_name["InNetworkPostsService"],
        phoenix_pb2.DESCRIPTOR.services_by_name["RetrievalService"],
        phoenix_pb2.DESCRIPTOR.services_by_name["RankingService"],
        health_pb2.DESCRIPTOR.services_by_name["Health"],
        reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
    ]


def _undecodable(method: MethodDescriptor, n: int = 3) -> list[bytes]:
    """Bytes the method's request type cannot parse: a corrupt tag, plus random bodies that fail."""
    cls = message_factory.GetMessageClass(method.input_type)
    rng = random.Random(method.full_name)
    out = [b"\xff\xff\xff\xff"]
    while len(out) < n:
        data = rng.randbytes(rng.randint(1, 64))
        try:
            cls.FromString(data)
        except DecodeError:
            out.append(data)
    return out


async def _call_raw(ch: grpc.aio.Channel, method: MethodDescriptor, data: bytes) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    kind = (method.client_streaming, method.server_streaming)
    if kind == (False, False):
        await ch.unary_unary(path)(data, timeout=5)
    elif kind == (False, True):
        async for _ in ch.unary_stream(path)(data, timeout=5):
            pass
    elif kind == (True, False):
        await ch.stream_unary(path)(iter([data]), timeout=5)
    else:
        async for _ in ch.stream_stream(path)(iter([data]), timeout=5):
            pass


def test_undecodable_bytes_on_every_method_of_every_service(
    fakes: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    """home_mixer as it runs (HomeMixerService), Thunder's and Phoenix's services on the shared
    grpc.aio server and on the thread-pool server (the ranker's): whatever the servicer, bytes that
    do not decode never reach it."""

    async def go() -> list[tuple[str, str, grpc.StatusCode]]:
        hm = HomeMixerService(Settings(), _world(fakes), HomeMixerConfig(publish_served=False))
        await hm.start()
        aio = GrpcServer("127.0.0.1:0")
        aio.add(thunder_pb2_grpc.add_InNetworkPostsServiceServicer_to_server, _Thunder(), "thunder")
        aio.add(phoenix_pb2_grpc.add_RetrievalServiceServicer_to_server, _Retrieval(), "retrieval")
        aio.add(phoenix_pb2_grpc.add_RankingServiceServicer_to_server, _Ranking(), "ranking")
        await aio.start()
        sync, health, port = make_sync_server("127.0.0.1:0")
        home_mixer_pb2_grpc.add_ScoredPostsServiceServicer_to_server(_ScoredPosts(), sync)
        thunder_pb2_grpc.add_InNetworkPostsServiceServicer_to_server(_Thunder(), sync)
        phoenix_pb2_grpc.add_RetrievalServiceServicer_to_server(_Retrieval(), sync)
        phoenix_pb2_grpc.add_RankingServiceServicer_to_server(_Ranking(), sync)
        finish_sync_server(sync, health, ["all"])
        every = {svc.name for svc in _services()}
        servers = {  # address -> the services it hosts
            hm.address: every - {"InNetworkPostsService", "RetrievalService", "RankingService"},
            aio.address: every - {"ScoredPostsService"},
            f"127.0.0.1:{port}": every,
        }
        results = []
        try:
            for address, hosted in servers.items():
                async with grpc.aio.insecure_channel(address) as ch:
                    for svc in _services():
                        if svc.name not in hosted:
                            continue
                        for method in svc.methods:
                            for data in _undecodable(method):
                                try:
                                    await _call_raw(ch, method, data)
                                    code = grpc.StatusCode.OK
                                except grpc.aio.AioRpcError as e:
                                    code = e.code()
                                results.append((address, method.full_name, code))
        finally:
            await hm.stop()
            await aio.stop(0)
            sync.stop(0)
        return results

    caplog.set_level(logging.INFO)
    results = asyncio.run(go())
    methods = {m for _, m, _ in results}
    assert "foryou.phoenix.RankingService.Predict" in methods and "grpc.health.v1.Health.Watch" in methods
    assert len(methods) == sum(len(s.methods) for s in _services())
    wrong = [r for r in results if r[2] != grpc.StatusCode.INVALID_ARGUMENT]
    assert wrong == []
    assert _problems(caplog.records) == []
    lines = [r for r in caplog.records if r.name == "foryou.core.grpc_server"]
    assert len(lines) == len(results)  # exactly one line per bad call
    assert all("malformed request" in r.getMessage() for r in lines)


# generated base servicers: a request that decodes would answer UNIMPLEMENTED; bad bytes never get here
class _ScoredPosts(home_mixer_pb2_grpc.ScoredPostsServiceServicer):
    pass


class _Thunder(thunder_pb2_grpc.InNetworkPostsServiceServicer):
    pass


class _Retrieval(phoenix_pb2_grpc.RetrievalServiceServicer):
    pass


class _Ranking(phoenix_pb2_grpc.RankingServiceServicer):
    pass


# ---- limits are configuration; bodies over the worst valid size are refused unread ---------------


def test_limits_from_the_service_config_and_the_byte_limit(fakes: SimpleNamespace) -> None:
    """HomeMixerConfig.limits sets what a request may carry (10 ids here: 11 is INVALID_ARGUMENT,
    10 is served); the server's receive limit admits the widest valid request of the default limits
    and refuses a larger body before reading it (RESOURCE_EXHAUSTED, gRPC's own answer)."""
    limit = max_request_bytes(DEFAULT_LIMITS, EngagementLimits())
    widest = home_mixer_pb2.GetDebugScoredPostsRequest(
        query=Req(
            viewer_id=(1 << 63) - 1,
            seen_ids=[(1 << 63) - 1] * (DEFAULT_LIMITS.max_ids_per_request // 2),
            served_ids=[(1 << 63) - 1] * (DEFAULT_LIMITS.max_ids_per_request // 2),
            client_app_id=(1 << 63) - 1,
            country_code="\U0001f600" * DEFAULT_LIMITS.max_code_len,
            language_code="\U0001f600" * DEFAULT_LIMITS.max_code_len,
        )
    )
    assert widest.ByteSize() <= limit < 2 << 20

    async def go() -> None:
        config = HomeMixerConfig(publish_served=False, limits=RequestLimits(max_ids_per_request=10))
        small = HomeMixerService(Settings(), _world(fakes), config)
        default = HomeMixerService(Settings(), _world(fakes), HomeMixerConfig(publish_served=False))
        await small.start()
        await default.start()
        try:
            async with grpc.aio.insecure_channel(small.address) as ch:
                stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
                assert (
                    await stub.GetScoredPosts(Req(viewer_id=1, seen_ids=range(1, 11)), timeout=5)
                ).request_id
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.GetScoredPosts(Req(viewer_id=1, seen_ids=range(1, 12)), timeout=5)
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "11 ids; at most 10 allowed" in (e.value.details() or "")
            async with grpc.aio.insecure_channel(default.address) as ch:
                stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
                huge = Req(viewer_id=1, seen_ids=[1 << 62] * 200_000)  # 1.8 MB: over the 100,000 ids
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.GetScoredPosts(huge, timeout=10)
                assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "larger than max" in (e.value.details() or "")
        finally:
            await small.stop()
            await default.stop()

    asyncio.run(go())
