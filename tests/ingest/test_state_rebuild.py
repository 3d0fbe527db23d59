"""The Redis user state is rebuilt from the Kafka topics: automatically when an ingest service finds
Redis without it while its groups have committed offsets (at start, and while running), and by
`foryou state rebuild`; every rebuild ends in exactly the state the first ingestion made, key by
key, and running the command twice changes nothing (counters included)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from foryou.app.cli import app
from foryou.core.kafka import make_producer
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from foryou.ingest.runner import IngestService
from foryou.ingest.state_rebuilder import MARKER
from protos import events_pb2 as ev

pytestmark = pytest.mark.integration
UE = ev.UserEventType


def _publish(settings: Settings) -> dict[str, int]:
    """A small history of every kind, with the orders that make naive re-application wrong: an
    unfollow after its follow, a delete after its create, repeated engagements of one post."""
    now = int(time.time() * 1000)
    posts = [make_id(now - 3_600_000 + i * 1000, i) for i in range(12)]
    user_events = [
        ev.UserEvent(user_id=u, target_user_id=t, type=UE.USER_EVENT_FOLLOW)
        for u in (1, 2, 3)
        for t in (10, 11, 12)
    ]
    user_events += [
        ev.UserEvent(user_id=1, target_user_id=11, type=UE.USER_EVENT_UNFOLLOW),
        ev.UserEvent(user_id=2, target_user_id=12, type=UE.USER_EVENT_BLOCK),
        ev.UserEvent(user_id=3, type=UE.USER_EVENT_MUTED_KEYWORD_ADD, keyword="Football"),
        ev.UserEvent(user_id=10, type=UE.USER_EVENT_PROFILE, screen_name="ten"),
    ]
    post_events = [
        ev.PostEvent(create=ev.Post(post_id=p, author_id=10 + i % 3, created_at=(now - 3_600_000) // 1000))
        for i, p in enumerate(posts)
    ]
    post_events.append(ev.PostEvent(delete=ev.PostDelete(post_id=posts[0], author_id=10, deleted_at_ms=now)))
    engagements = [
        ev.EngagementEvent(
            user_id=u,
            post_id=p,
            author_id=10 + i % 3,
            action=action,
            product_surface=ev.PRODUCT_SURFACE_HOME_TIMELINE,
            timestamp_ms=now - 600_000 + i * 1000 + u,
            dwell_ms=500,
        )
        for u in (1, 2, 3)
        for i, p in enumerate(posts)
        for action in (ev.IMPRESSION, ev.SERVER_TWEET_FAV, ev.IMPRESSION)
    ]
    producer = make_producer(settings)
    for e in user_events:
        producer.produce(
            settings.topic(settings.user_events_topic),
            key=str(e.user_id).encode(),
            value=e.SerializeToString(),
        )
    for pe in post_events:
        pid = pe.create.post_id or pe.delete.post_id
        producer.produce(
            settings.topic(settings.posts_topic), key=str(pid).encode(), value=pe.SerializeToString()
        )
    for en in engagements:
        producer.produce(
            settings.topic(settings.engagements_topic),
            key=str(en.user_id).encode(),
            value=en.SerializeToString(),
        )
    assert producer.flush(15) == 0
    return {"user_events": len(user_events), "posts": len(post_events), "engagements": len(engagements)}


def _snapshot(r: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under the prefix (the marker aside) with its value, whatever its type."""
    out: dict[str, Any] = {}
    for key in r.scan_iter(match=f"{prefix}*", count=1000):
        k = key.decode()
        if k == f"{prefix}{MARKER}":
            continue
        t = r.type(key)  # bytes: the client does not decode responses
        if t == b"set":
            out[k] = sorted(r.smembers(key))
        elif t == b"hash":
            out[k] = sorted(r.hgetall(key).items())
        elif t == b"zset":
            out[k] = r.zrange(key, 0, -1, withscores=True)
        else:
            out[k] = r.get(key)
    return out


def _wipe(r: redis.Redis, prefix: str) -> None:
    """What a Redis restarted without persistence (or a FLUSHALL) leaves of this test's keys."""
    keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        r.delete(*keys)


def _rebuilds(trigger: str) -> float:
    return REGISTRY.get_sample_value("foryou_ingest_state_rebuilds_total", {"trigger": trigger}) or 0.0


@pytest.fixture
def ingested(settings: Settings) -> Iterator[tuple[Settings, redis.Redis, dict[str, Any], dict[str, int]]]:
    """Events published and ingested by a first service (stopped again): (settings, client, the
    state it wrote, events per topic)."""
    s = settings.replace(consumer_health_interval_s=0.3)
    counts = _publish(s)
    r = redis.Redis.from_url(s.redis_url)
    with IngestService(s) as svc:
        assert svc.wait_caught_up(60)
        assert svc.rebuilds == 0  # a first ingestion: nothing consumed before, nothing to rebuild
    before = _snapshot(r, s.redis_prefix)
    assert len(before) > 30 and r.exists(f"{s.redis_prefix}{MARKER}")
    yield s, r, before, counts
    r.close()


def test_service_rebuilds_an_emptied_redis_at_start(
    ingested: tuple[Settings, redis.Redis, dict[str, Any], dict[str, int]], caplog: pytest.LogCaptureFixture
) -> None:
    s, r, before, _ = ingested
    _wipe(r, s.redis_prefix)
    startup = _rebuilds("startup")
    with caplog.at_level(logging.WARNING, logger="foryou.ingest.runner"), IngestService(s) as svc:
        # start() returned: the state is back before any live batch
        assert svc.rebuilds == 1
        assert _snapshot(r, s.redis_prefix) == before
        assert svc.wait_caught_up(30)
    assert _snapshot(r, s.redis_prefix) == before  # the live ingesters re-applied their tail: no change
    assert _rebuilds("startup") == startup + 1
    assert any("rebuilding it from Kafka" in m for m in caplog.messages)

    with IngestService(s) as svc:  # the state is there now: no second rebuild
        assert svc.rebuilds == 0


def test_running_service_rebuilds_when_redis_is_emptied_under_it(
    ingested: tuple[Settings, redis.Redis, dict[str, Any], dict[str, int]],
) -> None:
    s, r, before, _ = ingested
    runtime = _rebuilds("runtime")
    with IngestService(s) as svc:
        assert svc.wait_caught_up(30)
        _wipe(r, s.redis_prefix)
        deadline = time.monotonic() + 60
        while svc.rebuilds == 0:
            assert time.monotonic() < deadline, "no rebuild"
            time.sleep(0.05)
        assert _snapshot(r, s.redis_prefix) == before
    assert _rebuilds("runtime") == runtime + 1


def _rebuild_command(s: Settings, *args: str) -> Any:
    env = {
        "FORYOU_TOPIC_PREFIX": s.topic_prefix,
        "FORYOU_REDIS_PREFIX": s.redis_prefix,
        "FORYOU_LOG_JSON": "0",
    }
    cli = ["--kafka-bootstrap", s.kafka_bootstrap, "--redis-url", s.redis_url, "state", "rebuild", *args]
    return CliRunner().invoke(app, cli, env=env)


def test_rebuild_command_restores_the_same_state_and_is_idempotent(
    ingested: tuple[Settings, redis.Redis, dict[str, Any], dict[str, int]],
) -> None:
    s, r, before, counts = ingested
    _wipe(r, s.redis_prefix)
    res = _rebuild_command(s, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    applied = {t["ingester"]: t["applied"] for t in summary["topics"]}
    assert applied["social-graph"] == counts["user_events"]
    assert applied["post-content"] == counts["posts"]
    assert applied["action-sequence"] == counts["engagements"]
    assert summary["keys"] == len(before) + 1  # and the marker
    assert _snapshot(r, s.redis_prefix) == before

    res = _rebuild_command(s, "--json")  # over the full state: counters cleared first, not doubled
    assert res.exit_code == 0, res.output
    assert _snapshot(r, s.redis_prefix) == before


def test_rebuild_command_refuses_while_an_ingest_service_runs(
    ingested: tuple[Settings, redis.Redis, dict[str, Any], dict[str, int]],
) -> None:
    s, r, before, _ = ingested
    with IngestService(s) as svc:
        assert svc.wait_caught_up(30)
        res = _rebuild_command(s)
        assert res.exit_code == 2
        assert "an ingest service is running" in res.output
    assert _snapshot(r, s.redis_prefix) == before
