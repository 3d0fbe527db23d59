"""Oversize, undecodable and invalid messages are set aside on the dead-letter topic (whole or
truncated, with reason, size, origin and consumer group in headers) while every valid message around
them is applied; a dead-letter write that fails never lets the commit move past the batch.
Real Tansu broker and real redis-server (tests/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import redis
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from foryou.core import user_state as us
from foryou.core.events import POST_CHECK_REASONS, check_post_columns, decode_post_event
from foryou.core.kafka import (
    BatchConsumer,
    DeadLetterError,
    DeadLetterQueue,
    Decoded,
    consumer_config,
    make_producer,
)
from foryou.core.net import free_port
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from foryou.ingest.redis_ingester import IngestConfig
from foryou.ingest.runner import IngestService
from protos import events_pb2 as ev

pytestmark = pytest.mark.integration
BIG = 5_000_000


def _dlq(settings: Settings, topic: str, expect: int, timeout_s: float = 20.0) -> list[Message]:
    c = Consumer(consumer_config(settings, f"dlq-check-{time.time_ns()}"))
    c.assign([TopicPartition(settings.dlq_topic(topic), 0, 0)])
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expect and time.monotonic() < deadline:
        got += [m for m in c.consume(10, 0.2) if m.error() is None]
    # and nothing more arrives
    got += [m for m in c.consume(10, 0.5) if m.error() is None]
    c.close()
    return got


def _committed(settings: Settings, group: str, topic: str, partition: int) -> int:
    c = Consumer(consumer_config(settings, group))
    try:
        return int(c.committed([TopicPartition(topic, partition)], timeout=10)[0].offset)
    finally:
        c.close()


def _produce(producer: Producer, topic: str, key: bytes, values: list[bytes]) -> list[tuple[int, int]]:
    """Produce in order; [(partition, offset)] of each message."""
    where: list[tuple[int, int]] = []

    def on_delivery(err: Any, msg: Message) -> None:
        assert err is None, err
        where.append((msg.partition(), msg.offset()))

    for v in values:
        producer.produce(topic, key=key, value=v, on_delivery=on_delivery)
        producer.flush(10)  # one at a time: delivery order = produce order
    return where


def test_oversize_sandwich_on_every_ingester_topic(settings: Settings) -> None:
    """valid, 5 MB, valid on posts, engagements and user-events: both valid ones applied by the
    Redis ingesters, the big one on the DLQ truncated with its reason, size, origin and consumer
    group, and every group committed past all three."""
    now = int(time.time() * 1000)
    p1, p2, p_big = make_id(now - 60_000, 1), make_id(now - 30_000, 2), make_id(now - 10_000, 3)
    post = {pid: ev.Post(post_id=pid, author_id=7, text=f"post {pid}") for pid in (p1, p2)}
    # a valid-looking 5 MB post and muted keyword: set aside for their size, never decoded
    big_post = ev.PostEvent(create=ev.Post(post_id=p_big, author_id=7, text="x" * BIG))
    big_keyword = ev.UserEvent(user_id=5, type=ev.USER_EVENT_MUTED_KEYWORD_ADD, keyword="k" * BIG)

    def engagement(pid: int, t: int) -> bytes:
        return ev.EngagementEvent(
            user_id=5,
            post_id=pid,
            author_id=7,
            action=ev.SERVER_TWEET_FAV,
            timestamp_ms=t,
            product_surface=ev.PRODUCT_SURFACE_HOME_TIMELINE,
        ).SerializeToString()

    def follow(target: int) -> bytes:
        return ev.UserEvent(user_id=5, type=ev.USER_EVENT_FOLLOW, target_user_id=target).SerializeToString()

    sandwiches = {
        settings.posts_topic: (
            b"7",
            [
                ev.PostEvent(create=post[p1]).SerializeToString(),
                big_post.SerializeToString(),
                ev.PostEvent(create=post[p2]).SerializeToString(),
            ],
        ),
        settings.engagements_topic: (
            b"5",
            [engagement(p1, now - 50_000), b"\xff" * BIG, engagement(p2, now - 20_000)],
        ),
        settings.user_events_topic: (b"5", [follow(7), big_keyword.SerializeToString(), follow(8)]),
    }
    producer = make_producer(settings, **{"message.max.bytes": 10_000_000})
    where = {
        settings.topic(name): _produce(producer, settings.topic(name), key, values)
        for name, (key, values) in sandwiches.items()
    }
    for name, (_, values) in sandwiches.items():
        spots = where[settings.topic(name)]
        assert len(values[1]) >= BIG and spots[0][0] == spots[1][0] == spots[2][0]  # one partition

    t0 = time.monotonic()
    with IngestService(settings, IngestConfig()) as svc:
        assert svc.wait_caught_up(60), svc.stats()
        took = time.monotonic() - t0
        stats = svc.stats()
        # a topic may have several consuming ingesters (engagements: action sequences and counts)
        consumers: dict[str, dict[str, str]] = {}
        for ing in svc.ingesters:
            consumers.setdefault(ing.topic, {})[ing.group_id] = ing.name
    print(f"sandwich on 3 topics ingested in {took:.2f}s")
    for name in stats:
        assert stats[name].applied == 2 and stats[name].malformed == 1 and stats[name].consumed == 3, stats
    assert len(consumers[settings.topic(settings.engagements_topic)]) == 2

    r = redis.Redis.from_url(settings.redis_url)
    p = settings.redis_prefix
    assert us.mget_posts(r, [p1, p2, p_big], p) == [post[p1], post[p2], None]
    assert set(us.read_action_sequence(r, 5, p)["post_id"].tolist()) == {p1, p2}
    graph = us.read_social_graph(r, 5, p)
    assert graph.following == {7, 8} and graph.muted_keywords == set()

    for name, (_, values) in sandwiches.items():
        topic = settings.topic(name)
        groups = consumers[topic]
        letters = _dlq(settings, topic, expect=len(groups))
        assert len(letters) == len(groups), f"{topic}: {len(letters)} dead letters"
        big_partition, big_offset = where[topic][1]
        seen: dict[str, str] = {}
        for letter in letters:  # one per consuming group, each naming its group and consumer
            h = dict(letter.headers() or [])
            assert h["dlq.reason"].startswith(b"oversize: ") and b"bytes > 1000000" in h["dlq.reason"]
            assert h["dlq.topic"].decode() == topic
            assert (int(h["dlq.partition"]), int(h["dlq.offset"])) == (big_partition, big_offset)
            assert int(h["dlq.size"]) == len(values[1])
            assert h["dlq.truncated"] == b"1"
            assert letter.value() == values[1][: settings.dlq_truncate_bytes]  # a truncated copy
            seen[h["dlq.consumer_group"].decode()] = h["dlq.consumer"].decode()
        assert seen == groups
        for group in groups:  # every group's commit is past the whole sandwich
            assert _committed(settings, group, topic, big_partition) == where[topic][2][1] + 1


def test_batch_decoder_path_sets_aside_oversize_invalid_and_garbage(
    settings: Settings, unique_topic: Callable[..., str]
) -> None:
    """The vectorised (`decode_batch`) path used by Thunder, in replay mode (the retrieval index's):
    valid, 5 MB, an absurd post id, garbage, valid -> the two valid ones applied; the rest on the
    DLQ, the small ones whole, with the reason `check_post_columns` gave."""
    topic = unique_topic("posts", partitions=1)
    now = int(time.time() * 1000)
    ids = [make_id(now - 5_000, 1), make_id(now - 4_000, 2)]
    valid = [ev.PostEvent(create=ev.Post(post_id=i, author_id=3)).SerializeToString() for i in ids]
    absurd = ev.PostEvent(create=ev.Post(post_id=2**63 - 1, author_id=3)).SerializeToString()
    values = [valid[0], b"\x00" * BIG, absurd, b"\xff\xfe not a post", valid[1]]
    _produce(make_producer(settings, **{"message.max.bytes": 10_000_000}), topic, b"3", values)

    def decode_batch(raw: list[bytes | None]) -> tuple[list[int], list[tuple[int, str]]]:
        bad: list[tuple[int, str]] = []
        rows: list[tuple[int, int, int]] = []
        for i, v in enumerate(raw):
            try:
                e = ev.PostEvent.FromString(v or b"")
            except Exception as ex:  # noqa: BLE001 - the reason goes to the DLQ
                bad.append((i, f"DecodeError: {ex}"))
                continue
            rows.append((i, e.create.post_id, e.create.author_id))
        a = np.array(rows, dtype=np.int64).reshape(-1, 3)
        codes = check_post_columns(a[:, 1], a[:, 2])
        bad += [(int(a[j, 0]), POST_CHECK_REASONS[int(codes[j])]) for j in np.flatnonzero(codes)]
        return [int(x) for x in a[codes == 0, 1]], bad

    applied: list[int] = []
    c: BatchConsumer[Any] = BatchConsumer(
        settings,
        "batch-path",
        [topic],
        None,
        applied.extend,
        replay_from_beginning=True,
        decode_batch=decode_batch,
    )
    try:
        deadline = time.monotonic() + 30
        while c.stats.consumed < len(values) and time.monotonic() < deadline:
            c.poll_once(0.2)
    finally:
        c.close()
    assert applied == ids
    assert c.stats.malformed == 3
    letters = _dlq(settings, topic, expect=3)
    by_offset = {int(dict(m.headers() or [])["dlq.offset"]): m for m in letters}
    assert sorted(by_offset) == [1, 2, 3]
    reasons = {o: dict(m.headers() or [])["dlq.reason"].decode() for o, m in by_offset.items()}
    assert reasons[1].startswith("oversize: 5000000 bytes")
    assert reasons[2] == "invalid: post_id out of range"
    assert reasons[3].startswith("decode: DecodeError")
    assert by_offset[2].value() == absurd and by_offset[3].value() == values[3]  # small: whole
    assert dict(by_offset[2].headers() or [])["dlq.truncated"] == b"0"
    assert dict(by_offset[1].headers() or [])["dlq.consumer_group"] == b"batch-path-replay"


class _FlakyProducer:
    """The dead-letter producer: while `failing`, a real producer aimed at a port where no broker
    listens (its writes time out); then the real one."""

    def __init__(self, real: Producer, dead: Producer) -> None:
        self.real, self.dead, self.failing = real, dead, True

    def _p(self) -> Producer:
        return self.dead if self.failing else self.real

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self._p().produce(*args, **kwargs)

    def poll(self, timeout: float) -> int:
        return self._p().poll(timeout)

    def flush(self, timeout: float) -> int:
        return self._p().flush(timeout)

    def purge(self, **kwargs: Any) -> None:
        self._p().purge(**kwargs)


def test_failed_dead_letter_write_never_advances_the_commit(
    settings: Settings, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("posts", partitions=1)
    now = int(time.time() * 1000)
    ids = [make_id(now - 5_000, i) for i in range(3)]
    values = [ev.PostEvent(create=ev.Post(post_id=i, author_id=3)).SerializeToString() for i in ids]
    values.insert(1, b"\xff garbage")
    _produce(make_producer(settings), topic, b"3", values)

    group = f"{settings.topic_prefix}flaky"
    dead = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 1000})
    flaky = _FlakyProducer(make_producer(settings, **{"linger.ms": 0}), dead)
    dlq = DeadLetterQueue(settings.replace(dlq_timeout_s=1.0), flaky, consumer="flaky", group_id=group)  # type: ignore[arg-type]
    applied: list[int] = []

    def apply(batch: list[Decoded[ev.PostEvent]]) -> None:
        applied.extend(d.value.create.post_id for d in batch)

    c = BatchConsumer(settings, "flaky", [topic], decode_post_event, apply, group_id=group, dlq=dlq)
    try:
        failures = 0
        deadline = time.monotonic() + 30
        while failures < 2 and time.monotonic() < deadline:  # fails, is retried, fails again
            try:
                c.poll_once(0.2)
            except DeadLetterError:
                failures += 1
        assert failures == 2 and c.stats.dead_letter_failures == 2
        assert applied == []  # the valid messages around the bad one were not applied either ...
        assert _committed(settings, group, topic, 0) < 0  # ... and nothing was committed

        flaky.failing = False  # the dead-letter topic is writable again
        deadline = time.monotonic() + 30
        while len(applied) < 3 and time.monotonic() < deadline:
            c.poll_once(0.2)
        assert applied == ids  # nothing lost, nothing twice
        assert _committed(settings, group, topic, 0) == 4
    finally:
        c.close()
    letters = _dlq(settings, topic, expect=1)
    assert [m.value() for m in letters] == [b"\xff garbage"]  # the purged attempts never arrive
    assert dict(letters[0].headers() or [])["dlq.consumer_group"].decode() == group

    # a restart of the group resumes after the batch: nothing left to read
    again: list[int] = []
    c2 = BatchConsumer(settings, "flaky", [topic], decode_post_event, again.extend, group_id=group)
    try:
        deadline = time.monotonic() + 10
        while not c2.caught_up() and time.monotonic() < deadline:
            c2.poll_once(0.2)
        assert c2.caught_up() and again == [] and c2.stats.consumed == 0
    finally:
        c2.close()
