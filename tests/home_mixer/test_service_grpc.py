"""The gRPC service: health, reflection, INVALID_ARGUMENT, the debug RPC and the explain table; and
degradation with real transports whose peers are down (nothing listening / Redis unreachable)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from rich.console import Console

from foryou.core.net import free_port
from foryou.core.settings import Settings
from home_mixer.clients import HomeMixerClients, RedisUserState, build_clients_from_addresses
from home_mixer.explain import render_feed_table
from home_mixer.handler import ScoredPostsHandler
from home_mixer.pipeline import ScoredPostsPipeline
from home_mixer.service import HomeMixerConfig, HomeMixerService
from home_mixer.servicer import SERVICE_NAME
from protos import home_mixer_pb2, home_mixer_pb2_grpc, phoenix_pb2


def test_grpc_service_end_to_end_calls(fakes: SimpleNamespace) -> None:
    w = fakes.small_world()

    async def go() -> None:
        clients = HomeMixerClients(w.thunder, w.retrieval, w.ranker, w.store)
        svc = HomeMixerService(Settings(), clients, HomeMixerConfig(publish_served=False))
        await svc.start()
        try:
            async with grpc.aio.insecure_channel(svc.address) as ch:
                health = await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=SERVICE_NAME)
                )
                assert health.status == health_pb2.HealthCheckResponse.SERVING
                refl = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")])
                )
                names = [s.name async for r in refl for s in r.list_services_response.service]
                assert SERVICE_NAME in names
                stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
                resp = await stub.GetScoredPosts(home_mixer_pb2.GetScoredPostsRequest(viewer_id=1), timeout=5)
                assert len(resp.scored_posts) == 20
                assert {p.source for p in resp.scored_posts} == {"ThunderSource", "PhoenixSource"}
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.GetScoredPosts(home_mixer_pb2.GetScoredPostsRequest(viewer_id=0), timeout=5)
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "viewer_id" in e.value.details()
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.GetDebugScoredPosts(
                        home_mixer_pb2.GetDebugScoredPostsRequest(
                            query=home_mixer_pb2.GetScoredPostsRequest(viewer_id=1),
                            param_overrides={"result_size": "many"},
                        ),
                        timeout=5,
                    )
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                debug = await stub.GetDebugScoredPosts(
                    home_mixer_pb2.GetDebugScoredPostsRequest(
                        query=home_mixer_pb2.GetScoredPostsRequest(viewer_id=1),
                        param_overrides={"result_size": "5"},
                    ),
                    timeout=5,
                )
                assert sum(c.outcome == "selected" for c in debug.candidates) == 5
                console = Console(record=True, width=250)
                console.print(render_feed_table(debug))
                text = console.export_text()
                assert str(debug.candidates[0].post_id) in text and "OON×0.75" in text
        finally:
            await svc.stop()

    asyncio.run(go())


@pytest.mark.integration
def test_all_grpc_peers_down_still_answers(settings: Settings, fakes: SimpleNamespace) -> None:
    """Thunder, retrieval and the ranker addresses have nothing listening: every RPC fails, the
    request still answers (empty) within its deadline and says why."""

    async def go() -> home_mixer_pb2.GetScoredPostsResponse:
        dead = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        clients = build_clients_from_addresses(*dead, settings)
        handler = ScoredPostsHandler(ScoredPostsPipeline(clients), clients)
        t0 = time.monotonic()
        resp = await handler.get_scored_posts(home_mixer_pb2.GetScoredPostsRequest(viewer_id=1))
        assert time.monotonic() - t0 < 2.0  # the pipeline's own request deadline is 1 s
        await clients.close()
        return resp

    # the viewer follows someone, so Thunder is actually called
    import redis as sync_redis

    from foryou.core.user_state import social_key

    sync_redis.Redis.from_url(settings.redis_url).sadd(social_key("following", 1, settings.redis_prefix), 10)
    resp = asyncio.run(go())
    assert len(resp.scored_posts) == 0
    assert set(resp.degraded) == {"thunder", "retrieval"}  # nothing left to rank: ranker not called


def test_unreachable_redis_degrades(fakes: SimpleNamespace) -> None:
    w = fakes.small_world()

    async def go() -> home_mixer_pb2.GetScoredPostsResponse:
        store = RedisUserState(f"redis://127.0.0.1:{free_port()}/0")
        clients = HomeMixerClients(w.thunder, w.retrieval, w.ranker, store)
        handler = ScoredPostsHandler(ScoredPostsPipeline(clients), clients)
        resp = await handler.get_scored_posts(home_mixer_pb2.GetScoredPostsRequest(viewer_id=1))
        await clients.close()
        return resp

    resp = asyncio.run(go())
    # retrieval still answers, but without post data or the viewer's safety data no post can be
    # cleared: the safety filters fail closed and the response says why
    assert resp.degraded == ["redis", "IneligibleSubscriptionFilter: subscription data unavailable"]
    assert len(resp.scored_posts) == 0


def test_bounded_concurrency_rejects_excess(fakes: SimpleNamespace) -> None:
    """max_concurrent_rpcs=1 and a ranker that holds each request: of three simultaneous calls,
    excess ones are answered RESOURCE_EXHAUSTED while one is served."""
    w = fakes.small_world()
    real_predict = w.ranker.predict

    async def held(request: phoenix_pb2.PredictRequest) -> phoenix_pb2.PredictResponse:
        await asyncio.sleep(0.3)
        return await real_predict(request)

    w.ranker.predict = held

    async def go() -> list[object]:
        clients = HomeMixerClients(w.thunder, w.retrieval, w.ranker, w.store)
        svc = HomeMixerService(
            Settings(), clients, HomeMixerConfig(publish_served=False, max_concurrent_rpcs=1)
        )
        await svc.start()
        try:
            async with grpc.aio.insecure_channel(svc.address) as ch:
                stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
                req = home_mixer_pb2.GetScoredPostsRequest(viewer_id=1)
                return await asyncio.gather(
                    *[stub.GetScoredPosts(req, timeout=10) for _ in range(3)], return_exceptions=True
                )
        finally:
            await svc.stop()

    results = asyncio.run(go())
    ok = [r for r in results if isinstance(r, home_mixer_pb2.GetScoredPostsResponse)]
    rejected = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert ok and len(ok[0].scored_posts) == 20
    assert rejected and all(r.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for r in rejected)


@pytest.mark.integration
def test_kafka_down_feed_answers_and_served_log_degradation_is_visible(
    settings: Settings, fakes: SimpleNamespace
) -> None:
    """The `served` producer points at a port with no broker: every feed still answers in full;
    once the impressions' delivery fails, responses say `kafka` in degraded, the degraded metric
    and the lost-events counter count it. With a reachable broker the log recovers."""
    from confluent_kafka import Producer

    from foryou.core.kafka import make_producer

    w = fakes.small_world()
    lost = "foryou_home_mixer_served_events_lost_total"
    lost_before = _sample(lost, {"reason": "delivery"})
    kafka_before = _sample("foryou_degraded_total", {"service": "home_mixer", "dependency": "kafka"})

    async def go() -> list[home_mixer_pb2.GetScoredPostsResponse]:
        dead = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 300})
        clients = HomeMixerClients(w.thunder, w.retrieval, w.ranker, w.store)
        svc = HomeMixerService(settings, clients, producer=dead)
        await svc.start()
        out = []
        try:
            async with grpc.aio.insecure_channel(svc.address) as ch:
                stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
                req = home_mixer_pb2.GetScoredPostsRequest(viewer_id=1)
                for _ in range(100):  # the first delivery reports arrive after ~0.3-1 s
                    out.append(await stub.GetScoredPosts(req, timeout=5))
                    if "kafka" in out[-1].degraded:
                        break
                    await asyncio.sleep(0.1)
                # the broker is reachable again: the next delivered event clears the state
                side_effect = svc.pipeline.served_impressions
                assert side_effect is not None
                side_effect.producer = make_producer(settings)
                await stub.GetScoredPosts(req, timeout=5)
                await svc.pipeline.drain_side_effects()
                await asyncio.to_thread(side_effect.producer.flush, 10)
                out.append(await stub.GetScoredPosts(req, timeout=5))
        finally:
            await svc.stop()
        return out

    out = asyncio.run(go())
    assert all(len(r.scored_posts) == 20 for r in out)
    failing, recovered = out[-2], out[-1]
    assert failing.degraded == ["kafka"] and recovered.degraded == []
    assert not any(r.degraded for r in out[:-2])  # nothing else was degraded before
    assert _sample(lost, {"reason": "delivery"}) >= lost_before + 20
    assert (
        _sample("foryou_degraded_total", {"service": "home_mixer", "dependency": "kafka"}) >= kafka_before + 1
    )


def _sample(name: str, labels: dict[str, str]) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_full_producer_queue_drops_and_counts(fakes: SimpleNamespace) -> None:
    """librdkafka's local queue is full (broker away for long): the side effect drops the events
    without blocking or raising, counts them and marks the served log failing."""
    from home_mixer.side_effects.served_impressions_side_effect import ServedImpressionsSideEffect

    class FullProducer:
        def produce(self, *args: object, **kw: object) -> None:
            raise BufferError("Local: Queue full")

        def poll(self, timeout: float) -> int:
            return 0

    se = ServedImpressionsSideEffect(FullProducer(), "served")
    selected = [fakes.cand(i, 10, score=1.0) for i in range(1, 6)]
    before = _sample("foryou_home_mixer_served_events_lost_total", {"reason": "queue_full"})
    asyncio.run(se.run(fakes.query(), selected, []))
    assert se.check() is True and se.last_error == "producer queue full"
    assert _sample("foryou_home_mixer_served_events_lost_total", {"reason": "queue_full"}) == before + 5
