"""LogEngagements: a client's batch over gRPC lands on the `engagements` topic exactly as sent (the
ingesters' encoding, key = user id), only after Kafka acknowledged it; a bad batch is rejected
whole (INVALID_ARGUMENT naming the event) with nothing written; Kafka down is UNAVAILABLE."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from foryou.core.kafka import consumer_config
from foryou.core.net import free_port
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from home_mixer.clients import HomeMixerClients
from home_mixer.engagement_log_handler import (
    EngagementLimits,
    EngagementLogHandler,
    EngagementLogUnavailable,
    InvalidEngagements,
)
from home_mixer.service import HomeMixerConfig, HomeMixerService
from protos import events_pb2 as ev
from protos import home_mixer_pb2, home_mixer_pb2_grpc

NOW_MS = int(time.time() * 1000)


def engagement(user: int, seq: int, action: int = ev.SERVER_TWEET_FAV, **kw: Any) -> ev.EngagementEvent:
    fields: dict[str, Any] = dict(
        user_id=user,
        post_id=make_id(NOW_MS - 3_600_000, seq),  # a post created an hour ago
        author_id=50 + seq,
        action=action,
        timestamp_ms=NOW_MS - 1000 * seq,
        product_surface=ev.PRODUCT_SURFACE_HOME_TIMELINE,
        dwell_ms=1500,
    )
    fields.update(kw)
    return ev.EngagementEvent(**fields)


def batch(events: Sequence[ev.EngagementEvent]) -> home_mixer_pb2.LogEngagementsRequest:
    return home_mixer_pb2.LogEngagementsRequest(events=events)


def clients(fakes: SimpleNamespace) -> HomeMixerClients:
    return HomeMixerClients(fakes.Thunder(), fakes.Retrieval(), fakes.Ranker(), fakes.UserState())


def read_topic(settings: Settings, topic: str, expect: int, timeout_s: float = 15.0) -> list[Any]:
    """Every message of `topic` (all partitions, from the start): stops at `expect` messages, then
    reads a little longer so that extra messages would show."""
    c = Consumer(consumer_config(settings, f"read-{topic}"))
    c.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
    out: list[Any] = []
    deadline = time.time() + timeout_s
    while len(out) < expect and time.time() < deadline:
        out += [m for m in c.consume(500, 0.2) if m.error() is None]
    out += [m for m in c.consume(500, 0.5) if m.error() is None]
    c.close()
    return out


async def call(svc: HomeMixerService, req: home_mixer_pb2.LogEngagementsRequest) -> Any:
    async with grpc.aio.insecure_channel(svc.address) as ch:
        return await home_mixer_pb2_grpc.ScoredPostsServiceStub(ch).LogEngagements(req, timeout=10)


@pytest.mark.integration
def test_logged_engagements_reach_the_topic(settings: Settings, fakes: SimpleNamespace) -> None:
    """Two users' engagements (an impression-only row included) over gRPC, acknowledged, then read
    back from the topic: the same EngagementEvents, keyed by user id, one user per partition."""
    sent = [engagement(7, i) for i in range(4)] + [engagement(8, 9, ev.IMPRESSION, dwell_ms=0)]
    sent.append(engagement(8, 10, ev.CLIENT_TWEET_CLICK, product_surface=ev.PRODUCT_SURFACE_RANKED_FOLLOWING))

    async def go() -> home_mixer_pb2.LogEngagementsResponse:
        svc = HomeMixerService(settings, clients(fakes), HomeMixerConfig(publish_served=False))
        await svc.start()
        try:
            return await call(svc, batch(sent))
        finally:
            await svc.stop()

    t0 = time.monotonic()
    resp = asyncio.run(go())
    assert resp.accepted == len(sent) and time.monotonic() - t0 < 10
    msgs = read_topic(settings, settings.topic(settings.engagements_topic), len(sent))
    got = [(m.key(), ev.EngagementEvent.FromString(m.value())) for m in msgs]
    assert sorted((e.SerializeToString() for _, e in got)) == sorted(e.SerializeToString() for e in sent)
    assert all(k == str(e.user_id).encode() for k, e in got)
    assert all(m.timestamp()[1] == ev.EngagementEvent.FromString(m.value()).timestamp_ms for m in msgs)
    partitions = {
        u: {m.partition() for m, (_, e) in zip(msgs, got, strict=True) if e.user_id == u} for u in (7, 8)
    }
    assert all(len(p) == 1 for p in partitions.values())


BAD = [
    ("user_id", dict(user_id=0)),
    ("post_id", dict(post_id=-5)),
    ("post_id", dict(post_id=2**62)),  # a snowflake from the far future
    ("author_id", dict(author_id=0)),
    ("unknown action", dict(action=77)),
    ("unknown action", dict(action=ev.INVALID)),
    ("product_surface", dict(product_surface=99)),
    ("timestamp_ms 0 out of range", dict(timestamp_ms=0)),
    ("in the future", dict(timestamp_ms=NOW_MS + 3_600_000)),
    ("older than", dict(timestamp_ms=NOW_MS - 30 * 86_400_000)),
    ("precedes the creation", dict(timestamp_ms=NOW_MS - 2 * 3_600_000)),
    ("dwell_ms", dict(dwell_ms=-1)),
]


@pytest.mark.integration
def test_bad_batch_is_invalid_argument_and_nothing_is_written(
    settings: Settings, fakes: SimpleNamespace
) -> None:
    """Each bad batch has one bad event at index 2 of 4: INVALID_ARGUMENT naming `events[2]` and the
    field. Then a good batch is acknowledged: the topic holds exactly the good batch (anything of
    the bad ones would have been produced, and delivered, before it)."""
    good = [engagement(11, i) for i in range(3)]

    async def go() -> tuple[list[grpc.aio.AioRpcError], home_mixer_pb2.LogEngagementsResponse]:
        svc = HomeMixerService(settings, clients(fakes), HomeMixerConfig(publish_served=False))
        await svc.start()
        errors = []
        try:
            for _, bad in BAD:
                events = [engagement(9, i) for i in range(4)]
                events[2] = engagement(9, 2, **bad)
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await call(svc, batch(events))
                errors.append(e.value)
            with pytest.raises(grpc.aio.AioRpcError) as e:  # over the batch limit
                await call(svc, batch([engagement(9, i % 100) for i in range(1001)]))
            errors.append(e.value)
            return errors, await call(svc, batch(good))
        finally:
            await svc.stop()

    errors, ok = asyncio.run(go())
    for (what, _), err in zip(BAD, errors, strict=False):
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith("events[2]: ") and what in err.details(), err.details()
    assert errors[-1].code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 1000" in errors[-1].details()
    assert ok.accepted == 3
    msgs = read_topic(settings, settings.topic(settings.engagements_topic), len(good))
    assert sorted(m.value() for m in msgs) == sorted(e.SerializeToString() for e in good)


def test_broker_down_is_unavailable(fakes: SimpleNamespace) -> None:
    """The producer points at a port with no broker: the batch is not acknowledged within the
    delivery deadline, the RPC answers UNAVAILABLE and counts the events as unavailable."""
    from prometheus_client import REGISTRY

    def unavailable() -> float:
        return (
            REGISTRY.get_sample_value("foryou_home_mixer_engagements_total", {"outcome": "unavailable"}) or 0
        )

    before = unavailable()

    async def go() -> grpc.aio.AioRpcError:
        dead = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 300})
        cfg = HomeMixerConfig(publish_served=False, engagement_delivery_timeout_ms=300)
        svc = HomeMixerService(Settings(), clients(fakes), cfg, engagement_producer=dead)
        await svc.start()
        try:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call(svc, batch([engagement(7, i) for i in range(3)]))
            return e.value
        finally:
            await svc.stop()

    t0 = time.monotonic()
    err = asyncio.run(go())
    assert err.code() == grpc.StatusCode.UNAVAILABLE and "3 events" in err.details(), err.details()
    assert time.monotonic() - t0 < 8
    assert unavailable() == before + 3


def test_no_kafka_configured_is_unimplemented(fakes: SimpleNamespace) -> None:
    async def go() -> grpc.aio.AioRpcError:
        svc = HomeMixerService(Settings(), clients(fakes), HomeMixerConfig(publish_served=False))
        await svc.start()
        try:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call(svc, batch([engagement(7, 1)]))
            return e.value
        finally:
            await svc.stop()

    assert asyncio.run(go()).code() == grpc.StatusCode.UNIMPLEMENTED


class FakeProducer:
    """Reports deliveries on poll: every message ok, or the given error for each."""

    def __init__(self, error: str | None = None, full_after: int | None = None) -> None:
        self.error, self.full_after = error, full_after
        self.queued: list[tuple[Any, ...]] = []
        self.produced: list[bytes] = []

    def produce(self, topic: str, key: bytes, value: bytes, timestamp: int, on_delivery: Any) -> None:
        if self.full_after is not None and len(self.queued) >= self.full_after:
            raise BufferError("Local: Queue full")
        self.queued.append((on_delivery, value))

    def poll(self, timeout: float) -> int:
        served, self.queued = self.queued, []
        for cb, value in served:
            if self.error is None:
                self.produced.append(value)
            cb(self.error, None)
        if not served:
            time.sleep(min(timeout, 0.01))
        return len(served)

    def flush(self, timeout: float) -> int:
        self.poll(0)
        return 0


def run_handler(handler: EngagementLogHandler, req: home_mixer_pb2.LogEngagementsRequest) -> Any:
    async def go() -> Any:
        try:
            return await handler.log_engagements(req)
        finally:
            await handler.close()

    return asyncio.run(go())


def test_handler_acks_after_delivery_and_fails_on_any_error() -> None:
    ok = FakeProducer()
    resp = run_handler(EngagementLogHandler(ok, "engagements"), batch([engagement(7, i) for i in range(5)]))
    assert resp.accepted == 5 and len(ok.produced) == 5
    assert run_handler(EngagementLogHandler(FakeProducer(), "engagements"), batch([])).accepted == 0
    with pytest.raises(EngagementLogUnavailable, match="delivery failed: broker gone"):
        run_handler(EngagementLogHandler(FakeProducer("broker gone"), "e"), batch([engagement(7, 1)]))
    with pytest.raises(EngagementLogUnavailable, match="queue full"):
        run_handler(
            EngagementLogHandler(FakeProducer(full_after=2), "e"), batch([engagement(7, i) for i in range(4)])
        )


def test_handler_validates_before_producing_and_limits_are_configurable() -> None:
    p = FakeProducer()
    with pytest.raises(InvalidEngagements, match=r"^events\[1\]: user_id -1 out of range"):
        run_handler(EngagementLogHandler(p, "e"), batch([engagement(7, 0), engagement(-1, 1)]))
    assert p.produced == [] and p.queued == []
    # a simulator on a historical clock: old timestamps allowed by its limits
    old = engagement(7, 1, timestamp_ms=NOW_MS - 30 * 86_400_000, post_id=3)
    with pytest.raises(InvalidEngagements, match="older than"):
        run_handler(EngagementLogHandler(FakeProducer(), "e"), batch([old]))
    lenient = EngagementLogHandler(FakeProducer(), "e", limits=EngagementLimits(max_age_ms=365 * 86_400_000))
    assert run_handler(lenient, batch([old])).accepted == 1
