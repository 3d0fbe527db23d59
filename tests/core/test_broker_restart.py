"""Consumers keep ingesting across a broker restart (Tansu without storage comes back empty, on the
same port) and across a topic deleted and re-created with another partition count, and report
stalled while they cannot consume. Every consumer kind the services use runs at once: a group
member (the Redis ingesters), a full-replay assignment (the retrieval index updater) and Thunder's
retention-window assignment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from foryou.core.kafka import BatchConsumer, Decoded, ensure_topics, make_admin, make_producer
from foryou.core.settings import Settings
from thunder.posts_consumer import PostsConsumer

pytestmark = pytest.mark.integration
STALL_S = 1.0


class Collector:
    """A running consumer (own thread, as the services run them) and what it applied, in order."""

    def __init__(self, name: str, make: Callable[[Callable[[Any], None]], BatchConsumer[Any]]) -> None:
        self.name = name
        self.values: list[bytes] = []
        self.errors = 0
        self.consumer = make(self._apply)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"test-{name}", daemon=True)

    def _apply(self, batch: Any) -> None:
        if batch and isinstance(batch[0], Decoded):
            batch = [d.value for d in batch]
        self.values.extend(batch)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.consumer.poll_once(0.1)
            except Exception:  # noqa: BLE001 - what a service loop does: log, retry
                self.errors += 1
                time.sleep(0.1)

    def start(self) -> Collector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()


def _identity_batch(values: list[bytes | None]) -> tuple[list[bytes], list[tuple[int, str]]]:
    return [v or b"" for v in values], []


def _three_consumers(s: Settings) -> list[Collector]:
    topic = s.topic(s.posts_topic)
    group, thunder_group = f"{s.topic_prefix}g", f"{s.topic_prefix}thunder"
    return [
        Collector("group", lambda apply: BatchConsumer(s, "group", [topic], bytes, apply, group_id=group)),
        Collector(
            "replay",
            lambda apply: BatchConsumer(s, "replay", [topic], bytes, apply, replay_from_beginning=True),
        ),
        Collector(
            "thunder",
            lambda apply: PostsConsumer(s, _identity_batch, apply, retention_s=3600, group_id=thunder_group),
        ),
    ]


@pytest.fixture
def collectors(restart_settings: Settings) -> Iterator[list[Collector]]:
    out = [c.start() for c in _three_consumers(restart_settings)]
    yield out
    for c in out:
        c.stop()


def _publish(settings: Settings, values: list[bytes]) -> None:
    producer = make_producer(settings)
    for i, v in enumerate(values):
        producer.produce(settings.topic(settings.posts_topic), key=str(i).encode(), value=v)
    assert producer.flush(15) == 0


def test_consumers_resume_after_broker_restart_and_report_stalled_meanwhile(
    restartable_broker: Any,
    restart_settings: Settings,
    collectors: list[Collector],
    wait_until: Callable[..., float],
) -> None:
    first = [b"before-%d" % i for i in range(10)]
    _publish(restart_settings, first)
    wait_until(lambda: all(len(c.values) == 10 for c in collectors), 30)
    wait_until(lambda: all(c.consumer.caught_up() for c in collectors), 10)
    assert not any(c.consumer.is_stalled(STALL_S) for c in collectors)

    restartable_broker.stop()
    stalled_after = wait_until(lambda: all(c.consumer.is_stalled(STALL_S) for c in collectors), 15)
    for c in collectors:
        assert not c.consumer.caught_up()  # never "lag 0" while the broker is gone
        assert not c.consumer.health()["healthy"]
    time.sleep(1.0)  # down for a while: librdkafka gives up on the old connections

    t0 = time.monotonic()
    restartable_broker.start()  # same port, no topics: the consumers re-create them
    then = [b"after-%d" % i for i in range(5)]
    _publish(restart_settings, then)
    wait_until(lambda: all(len(c.values) >= 15 for c in collectors), 60)
    resumed_after = time.monotonic() - t0
    print(f"stalled reported after {stalled_after:.2f}s; ingesting again {resumed_after:.2f}s after restart")
    for c in collectors:
        assert sorted(c.values[:10]) == sorted(first)
        assert sorted(c.values[10:]) == sorted(then), c.name  # each new message exactly once
        assert c.consumer.stats.reinits >= 1
    wait_until(lambda: not any(c.consumer.is_stalled(STALL_S) for c in collectors), 10)
    wait_until(lambda: all(c.consumer.caught_up() for c in collectors), 10)


def test_consumers_follow_the_topic_back_with_another_partition_count(
    restartable_broker: Any, restart_settings: Settings, wait_until: Callable[..., float]
) -> None:
    """The broker restarts and nobody in the consumers re-creates topics (kafka_recreate_topics off):
    the topic is gone (partition count 0, "topics missing"), then comes back with 3 partitions
    instead of 2 (re-created by the operator, or auto-created by Tansu with its default of 4): every
    consumer reports stalled meanwhile, then reads every partition of the new topic.
    (Deleting a topic under a running consumer is not tested: librdkafka 2.16 segfaults on Tansu's
    metadata for a deleted topic, docs/RELIABILITY.md.)"""
    s = restart_settings.replace(kafka_recreate_topics=False)
    topic = s.topic(s.posts_topic)
    collectors = [c.start() for c in _three_consumers(s)]
    try:
        _publish(s, [b"old-%d" % i for i in range(6)])
        wait_until(lambda: all(len(c.values) == 6 for c in collectors), 30)

        restartable_broker.stop()
        wait_until(lambda: all(c.consumer.is_stalled(STALL_S) for c in collectors), 15)
        restartable_broker.start()
        ensure_topics(s, {topic: 3})  # the operator's re-creation (unless Tansu got there first)
        partitions = len(make_admin(s).list_topics(topic, timeout=10).topics[topic].partitions)
        assert partitions in (3, 4)  # no longer 2
        producer = make_producer(s)
        new = [b"new-%d" % i for i in range(3 * partitions)]
        for i, v in enumerate(new):
            producer.produce(topic, value=v, partition=i % partitions)
        assert producer.flush(15) == 0
        wait_until(lambda: all(len(c.values) >= 6 + len(new) for c in collectors), 60)
        for c in collectors:
            assert sorted(c.values[6:]) == sorted(new), c.name
            assert {tp.partition for tp in c.consumer._consumer.assignment()} == set(range(partitions))
        wait_until(lambda: not any(c.consumer.is_stalled(STALL_S) for c in collectors), 10)
    finally:
        for c in collectors:
            c.stop()
