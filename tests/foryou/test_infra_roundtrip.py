"""Each event type round-trips through the real broker (produce, group consume, commit), a value
through the real Redis, and the batch consumer sets malformed messages aside."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from foryou.core.kafka import BatchConsumer, consumer_config, make_producer
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from protos import events_pb2 as ev

pytestmark = pytest.mark.integration


def _events() -> list[tuple[str, object]]:
    pid = make_id(1_700_000_000_000, 7)
    post = ev.Post(
        post_id=pid,
        author_id=42,
        created_at=1_700_000_000,
        text="hello world",
        has_video=True,
        video_duration_ms=12_000,
        labels=["nsfw"],
        conversation_id=pid,
    )
    return [
        ("posts", ev.PostEvent(create=post)),
        (
            "posts",
            ev.PostEvent(delete=ev.PostDelete(post_id=pid, author_id=42, deleted_at_ms=1_700_000_100_000)),
        ),
        (
            "engagements",
            ev.EngagementEvent(
                user_id=7,
                post_id=pid,
                author_id=42,
                action=ev.SERVER_TWEET_FAV,
                timestamp_ms=1_700_000_050_000,
                product_surface=ev.PRODUCT_SURFACE_HOME_TIMELINE,
                dwell_ms=0,
            ),
        ),
        (
            "user-events",
            ev.UserEvent(user_id=7, type=ev.USER_EVENT_FOLLOW, target_user_id=42, timestamp_ms=1),
        ),
        (
            "served",
            ev.ServedEvent(
                viewer_id=7,
                post_id=pid,
                author_id=42,
                position=0,
                score=0.5,
                request_id="r1",
                model_version="m1",
                served_at_ms=2,
                in_network=True,
            ),
        ),
    ]


def test_each_event_type_round_trips_through_the_broker(settings: Settings) -> None:
    events = _events()
    producer = make_producer(settings)
    for name, msg in events:
        producer.produce(settings.topic(name), key=b"k", value=msg.SerializeToString())
    assert producer.flush(10) == 0

    topics = sorted({settings.topic(n) for n, _ in events})
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}g"))
    consumer.subscribe(topics)
    got: dict[str, list[bytes]] = {}
    deadline = time.monotonic() + 30
    while sum(len(v) for v in got.values()) < len(events) and time.monotonic() < deadline:
        for m in consumer.consume(100, 0.5):
            assert m.error() is None
            got.setdefault(m.topic(), []).append(m.value())
    consumer.commit(asynchronous=False)
    committed = consumer.committed(
        [TopicPartition(t, p) for t in topics for p in range(settings.partitions)], timeout=10
    )
    consumer.close()

    for name, msg in events:
        decoded = [type(msg).FromString(v) for v in got[settings.topic(name)]]
        assert msg in decoded
    assert sum(tp.offset for tp in committed if tp.offset > 0) == len(events)


def test_value_round_trips_through_redis(redis_url: str, unique_prefix: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.set(unique_prefix + "k", b"\x00\x01value", ex=60)
    assert r.get(unique_prefix + "k") == b"\x00\x01value"
    assert 0 < r.ttl(unique_prefix + "k") <= 60


def test_batch_consumer_dead_letters_malformed_and_keeps_going(settings: Settings) -> None:
    topic = settings.topic("posts")
    producer = make_producer(settings)
    good = ev.PostEvent(create=ev.Post(post_id=make_id(1_700_000_000_000), author_id=1))
    producer.produce(topic, key=b"1", value=good.SerializeToString(), partition=0)
    producer.produce(topic, key=b"bad", value=b"\xff\xff\xff not a protobuf", partition=0)
    producer.produce(topic, key=b"1", value=good.SerializeToString(), partition=0)
    producer.flush(10)

    applied: list[int] = []
    consumer = BatchConsumer(
        settings,
        "roundtrip",
        [topic],
        ev.PostEvent.FromString,
        lambda batch: applied.extend(d.offset for d in batch),
        group_id=f"{settings.topic_prefix}bc",
    )
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while len(applied) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join(10)
    assert consumer.caught_up()
    consumer.close()
    assert applied == [0, 2]
    assert consumer.stats.malformed == 1

    dlq = Consumer(consumer_config(settings, f"{settings.topic_prefix}dlq"))
    dlq.subscribe([settings.dlq_topic(topic)])
    msgs = []
    deadline = time.monotonic() + 30
    while not msgs and time.monotonic() < deadline:
        msgs = [m for m in dlq.consume(10, 0.5) if m.error() is None]
    dlq.close()
    assert len(msgs) == 1
    headers = dict(msgs[0].headers())
    assert msgs[0].value() == b"\xff\xff\xff not a protobuf"
    assert headers["dlq.topic"] == topic.encode()
    assert headers["dlq.offset"] == b"1"
    assert headers["dlq.reason"].startswith(b"decode:")
