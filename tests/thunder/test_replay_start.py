"""The startup replay position on the real broker: every message inside the retention window is
reached from the offsets `retention_start_offsets` returns."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer

from foryou.core.kafka import consumer_config, make_producer
from foryou.core.settings import Settings
from thunder.replay_start import retention_start_offsets

pytestmark = pytest.mark.integration


def test_replay_start_reaches_every_message_in_the_window(
    settings: Settings, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("posts", partitions=2)
    now_ms = int(time.time() * 1000)
    producer = make_producer(settings)
    # 10 old messages (3 days ago), then 10 inside a 48 h window, spread over both partitions
    for i in range(20):
        ts = now_ms - (3 * 86_400_000 if i < 10 else 60_000) + i
        producer.produce(topic, key=str(i).encode(), value=str(i).encode(), partition=i % 2, timestamp=ts)
    assert producer.flush(10) == 0

    consumer = Consumer(consumer_config(settings, f"{topic}-replay"))
    try:
        start = retention_start_offsets(consumer, [topic], retention_s=172_800, now_ms=now_ms)
        assert sorted(tp.partition for tp in start) == [0, 1]
        consumer.assign(start)
        seen: set[int] = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not set(range(10, 20)) <= seen:
            seen |= {int(m.value()) for m in consumer.consume(100, 0.2) if m.error() is None}
    finally:
        consumer.close()
    assert set(range(10, 20)) <= seen  # in-window messages all replayed (older ones may be too)


def test_missing_topic_is_a_clear_error(settings: Settings) -> None:
    consumer = Consumer(consumer_config(settings, "replay-missing"))
    try:
        with pytest.raises(RuntimeError, match="does not exist"):
            retention_start_offsets(consumer, [settings.topic("nope")], retention_s=10)
    finally:
        consumer.close()
