"""Decodable but invalid events (absurd ids and times, unknown enums, self-follows) on every input
topic are dead-lettered with an `invalid: ...` reason by the Redis ingesters, and the valid events
around them are applied. Real broker, real Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from foryou.core import user_state as us
from foryou.core.kafka import consumer_config, make_producer
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from foryou.ingest.runner import IngestService
from protos import events_pb2 as ev

pytestmark = pytest.mark.integration
INT64_MAX = 2**63 - 1


def _dlq_letters(settings: Settings, topic: str, expect: int) -> list[dict[str, str]]:
    c = Consumer(consumer_config(settings, f"dlq-check-{time.time_ns()}"))
    c.assign([TopicPartition(settings.dlq_topic(topic), 0, 0)])
    got: list[Any] = []
    deadline = time.monotonic() + 20
    while len(got) < expect and time.monotonic() < deadline:
        got += [m for m in c.consume(50, 0.2) if m.error() is None]
    c.close()
    return [{k: v.decode() for k, v in m.headers()} for m in got]


def _dlq_reasons(settings: Settings, topic: str, expect: int) -> list[str]:
    return sorted(h["dlq.reason"] for h in _dlq_letters(settings, topic, expect))


def test_invalid_events_are_dead_lettered_valid_ones_applied(settings: Settings) -> None:
    now = int(time.time() * 1000)
    good_pid = make_id(now - 60_000, 1)
    far_future = make_id(now + 53 * 365 * 86_400_000)  # the 53-year Redis TTL of the issue
    posts = [
        ev.PostEvent(create=ev.Post(post_id=good_pid, author_id=7)),
        ev.PostEvent(create=ev.Post(post_id=INT64_MAX - 5, author_id=7)),
        ev.PostEvent(create=ev.Post(post_id=far_future, author_id=7)),
        ev.PostEvent(create=ev.Post(post_id=make_id(now, 2), author_id=INT64_MAX)),
    ]

    def eng(**kw: int) -> ev.EngagementEvent:
        fields = {
            "user_id": 5,
            "post_id": good_pid,
            "author_id": 7,
            "action": ev.SERVER_TWEET_FAV,
            "timestamp_ms": now - 1_000,
            "product_surface": ev.PRODUCT_SURFACE_HOME_TIMELINE,
            **kw,
        }
        return ev.EngagementEvent(**fields)  # type: ignore[arg-type]

    engagements = [
        eng(),
        eng(timestamp_ms=INT64_MAX - 1),
        eng(action=63 + 7),  # not in ActionName
        eng(product_surface=12),  # not in ProductSurface
        eng(post_id=far_future),
    ]
    UE = ev.UserEventType
    user_events = [
        ev.UserEvent(user_id=5, type=UE.USER_EVENT_FOLLOW, target_user_id=7),
        ev.UserEvent(user_id=5, type=UE.USER_EVENT_FOLLOW, target_user_id=5),  # self-follow
        ev.UserEvent(user_id=5, type=UE.USER_EVENT_BLOCK, target_user_id=5),  # self-block
        ev.UserEvent(user_id=5, type=99, target_user_id=8),  # unknown type
        ev.UserEvent(user_id=INT64_MAX, type=UE.USER_EVENT_FOLLOW, target_user_id=7),
    ]
    producer = make_producer(settings)
    for name, msgs in (
        (settings.posts_topic, posts),
        (settings.engagements_topic, engagements),
        (settings.user_events_topic, user_events),
    ):
        for m in msgs:
            producer.produce(settings.topic(name), key=b"5", value=m.SerializeToString())
    assert producer.flush(10) == 0

    with IngestService(settings) as svc:
        assert svc.wait_caught_up(60), svc.stats()
        stats = svc.stats()
        assert svc.stalled(5.0) == [] and all(h["healthy"] for h in svc.health().values())
    assert (stats["post-content"].applied, stats["post-content"].malformed) == (1, 3)
    assert (stats["action-sequence"].applied, stats["action-sequence"].malformed) == (1, 4)
    assert (stats["social-graph"].applied, stats["social-graph"].malformed) == (1, 4)

    r = redis.Redis.from_url(settings.redis_url)
    p = settings.redis_prefix
    assert us.mget_posts(r, [good_pid, INT64_MAX - 5, far_future], p)[1:] == [None, None]
    assert r.pttl(us.post_key(good_pid, p)) <= us.RETENTION_MS + us.POST_TTL_MARGIN_MS
    assert us.read_action_sequence(r, 5, p)["post_id"].tolist() == [good_pid]
    graph = us.read_social_graph(r, 5, p)
    assert graph.following == {7} and graph.blocked == set()
    assert us.read_social_graph(r, INT64_MAX, p).following == set()

    post_reasons = _dlq_reasons(settings, settings.topic(settings.posts_topic), 3)
    expected = [f"post_id {INT64_MAX - 5}", f"post_id {far_future}", f"author_id {INT64_MAX}"]
    assert sorted(r.split(" out of range")[0] for r in post_reasons) == sorted(
        f"invalid: {e}" for e in expected
    )
    # two ingesters read `engagements` (action sequences, engagement counts): each sets every bad
    # event aside once, and the dead letter names the consumer that did
    letters = _dlq_letters(settings, settings.topic(settings.engagements_topic), 8)
    by_consumer: dict[str, list[str]] = {}
    for h in letters:
        by_consumer.setdefault(h["dlq.consumer"], []).append(h["dlq.reason"].split(" ")[1])
    assert {k: sorted(v) for k, v in by_consumer.items()} == {
        c: sorted(["timestamp_ms", "unknown", "unknown", "post_id"])
        for c in ("action-sequence", "engagement-counts")
    }
    eng_reasons = [h["dlq.reason"] for h in letters]
    ue_reasons = _dlq_reasons(settings, settings.topic(settings.user_events_topic), 4)
    assert len(ue_reasons) == 4 and sum("to itself" in r for r in ue_reasons) == 2
    assert all(r.startswith("invalid: ") for r in eng_reasons + ue_reasons)
