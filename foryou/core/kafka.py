"""Shared Kafka helpers: client configs, topic creation, dead-letter queue and the batch consumer
every ingesting component (Thunder, Redis ingesters, index updater) is built on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import Counter, Gauge, Histogram

from foryou.core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

CONSUMED = Counter("foryou_kafka_consumed_total", "Messages consumed", ["consumer", "topic"])
APPLIED = Counter("foryou_kafka_applied_total", "Decoded messages applied", ["consumer", "topic"])
MALFORMED = Counter(
    "foryou_kafka_malformed_total", "Messages sent to the dead-letter topic", ["consumer", "topic"]
)
LAG = Gauge("foryou_kafka_consumer_lag", "High watermark minus position", ["consumer", "topic", "partition"])
BATCH_SECONDS = Histogram(
    "foryou_kafka_batch_apply_seconds",
    "Time to decode and apply one consumed batch",
    ["consumer"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
        "compression.type": "none",
    }
    conf.update(overrides)
    return conf


# librdkafka's own log lines go through Python logging (structured, leveled) instead of raw
# stderr; they are delivered when the client is polled, so a closed-down client stays quiet
RDKAFKA_LOG = logging.getLogger("foryou.rdkafka")


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    return Producer(producer_config(settings, **overrides), logger=RDKAFKA_LOG)


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "heartbeat.interval.ms": max(100, settings.kafka_session_timeout_ms // 10),
        "fetch.wait.max.ms": 50,
        "queued.min.messages": 200_000,
    }
    conf.update(overrides)
    return conf


def ensure_topics(settings: Settings, topics: dict[str, int], timeout_s: float = 10.0) -> None:
    """Create missing topics with the given partition counts; existing ones are left alone."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [
        NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items() if t not in existing
    ]
    if not missing:
        return
    for topic, fut in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            fut.result()
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            log.debug("topic %s already exists", topic)


def wait_for_broker(bootstrap: str, timeout_s: float = 15.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=1.0)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise


class DeadLetterQueue:
    """Sets aside a message that cannot be decoded or applied: same key and value, on `<topic>.dlq`,
    with the reason and the original topic/partition/offset in headers."""

    def __init__(self, settings: Settings, producer: Producer | None = None) -> None:
        self._settings = settings
        self._producer = producer or make_producer(settings)

    def send(self, msg: Message, reason: str) -> None:
        topic = msg.topic() or "unknown"
        headers = [
            ("dlq.reason", reason.encode()[:1000]),
            ("dlq.topic", topic.encode()),
            ("dlq.partition", str(msg.partition()).encode()),
            ("dlq.offset", str(msg.offset()).encode()),
        ]
        self._producer.produce(
            self._settings.dlq_topic(topic), key=msg.key(), value=msg.value(), headers=headers
        )
        self._producer.poll(0)

    def flush(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)


@dataclass(slots=True)
class Decoded(Generic[T]):
    """A successfully decoded message with where it came from."""

    value: T
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None


@dataclass
class ConsumerStats:
    consumed: int = 0
    applied: int = 0
    malformed: int = 0
    batches: int = 0
    lag: dict[tuple[str, int], int] = field(default_factory=dict)


BatchDecoder = Callable[[list[bytes | None]], tuple[Any, Sequence[tuple[int, str]]]]


class BatchConsumer(Generic[T]):
    """Consume in batches, decode each message (malformed -> counted, logged, dead-lettered, skipped),
    hand the decoded batch to `apply`, then commit. Offsets are committed only after `apply` returns,
    so a crash replays rather than loses.

    With `decode_batch` instead of `decode`, the raw values of a whole batch go to one call that
    returns (payload, [(index of a malformed value, reason), ...]); `apply` then gets that payload
    (and is not called when every message was malformed). No per-message `Decoded` is built: for
    high-rate consumers that decode a batch into columns.

    With `group_id` the consumer subscribes (committed offsets, rebalancing). With `start="beginning"`
    and no commits (`commit=False`) it assigns every partition from offset 0 — the full-replay mode
    in-memory stores use to rebuild their state on start.
    """

    def __init__(
        self,
        settings: Settings,
        name: str,
        topics: Sequence[str],
        decode: Callable[[bytes], T] | None,
        apply: Callable[[list[Decoded[T]]], None] | Callable[[Any], None],
        *,
        group_id: str | None = None,
        replay_from_beginning: bool = False,
        batch_size: int | None = None,
        dlq: DeadLetterQueue | None = None,
        consumer_overrides: dict[str, Any] | None = None,
        decode_batch: BatchDecoder | None = None,
    ) -> None:
        if group_id is None and not replay_from_beginning:
            raise ValueError("need a group_id or replay_from_beginning=True")
        if (decode is None) == (decode_batch is None):
            raise ValueError("need exactly one of decode and decode_batch")
        self.name = name
        self.topics = list(topics)
        self._settings = settings
        self._decode = decode
        self._decode_batch = decode_batch
        self._apply: Callable[[Any], None] = apply
        self._commit = group_id is not None and not replay_from_beginning
        self._replay = replay_from_beginning
        self._batch_size = batch_size or settings.consumer_batch_size
        conf = consumer_config(settings, group_id or f"{name}-replay", **(consumer_overrides or {}))
        self._consumer = Consumer(conf, logger=RDKAFKA_LOG)
        self._dlq = dlq or DeadLetterQueue(settings)
        self.stats = ConsumerStats()
        self._assigned = False
        self._lock = threading.Lock()

    def _ensure_assigned(self) -> None:
        if self._assigned:
            return
        if self._replay:
            md = self._consumer.list_topics(timeout=10)
            tps = []
            for t in self.topics:
                if t not in md.topics:
                    raise RuntimeError(f"topic {t} does not exist")
                tps += [TopicPartition(t, p, OFFSET_BEGINNING) for p in sorted(md.topics[t].partitions)]
            self._consumer.assign(tps)
        else:
            self._consumer.subscribe(self.topics)
        self._assigned = True

    def poll_once(self, timeout_s: float | None = None) -> int:
        """Consume, decode, apply and commit one batch. Returns the number of messages consumed."""
        self._ensure_assigned()
        timeout = self._settings.consumer_poll_timeout_s if timeout_s is None else timeout_s
        msgs = self._consumer.consume(self._batch_size, timeout)
        if not msgs:
            return 0
        t0 = time.perf_counter()
        if self._decode_batch is not None:
            consumed, applied = self._decode_apply_batch(msgs)
        else:
            consumed, applied = self._decode_apply(msgs)
        if consumed and self._commit:
            self._consumer.commit(asynchronous=False)
        for t in set(map(Message.topic, msgs)):
            CONSUMED.labels(self.name, t).inc(consumed)
            APPLIED.labels(self.name, t).inc(applied)
        with self._lock:
            self.stats.consumed += consumed
            self.stats.applied += applied
            self.stats.batches += 1
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - t0)
        return consumed

    def _decode_apply(self, msgs: list[Message]) -> tuple[int, int]:
        """Per-message decode into `Decoded`s, then apply. Returns (consumed, applied)."""
        assert self._decode is not None
        decoded: list[Decoded[T]] = []
        consumed = 0
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer %s error: %s", self.name, err)
                continue
            consumed += 1
            try:
                value = self._decode(m.value())
            except Exception as e:  # malformed: set aside, never crash
                self._dead_letter(m, f"decode: {type(e).__name__}: {e}")
                continue
            ts = m.timestamp()[1]
            decoded.append(Decoded(value, m.topic(), m.partition(), m.offset(), ts, m.key()))
        if decoded:
            try:
                self._apply(decoded)
            except Exception:
                self._rewind(msgs)  # nothing applied is skipped: the batch is consumed again
                raise
        return consumed, len(decoded)

    def _decode_apply_batch(self, msgs: list[Message]) -> tuple[int, int]:
        """Raw values of the batch to `decode_batch`, malformed ones to the DLQ, then apply."""
        assert self._decode_batch is not None
        errors = list(map(Message.error, msgs))  # C-level loops: no Python step per message
        ok = msgs
        if errors.count(None) < len(msgs):
            ok = [m for m, err in zip(msgs, errors, strict=True) if err is None]
            for err in errors:
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer %s error: %s", self.name, err)
        values: list[bytes | None] = list(map(Message.value, ok))
        if not ok:
            return 0, 0
        try:
            payload, bad = self._decode_batch(values)
        except Exception:
            self._rewind(msgs)  # a decoder bug, not bad data: retry rather than skip
            raise
        for i, reason in bad:  # malformed: set aside, never crash
            self._dead_letter(ok[i], f"decode: {reason}")
        applied = len(ok) - len(bad)
        if applied:
            try:
                self._apply(payload)
            except Exception:
                self._rewind(msgs)
                raise
        return len(ok), applied

    def _rewind(self, msgs: list[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for m in msgs:
            if m.error() is None:
                key = (m.topic(), m.partition())
                first[key] = min(first.get(key, m.offset()), m.offset())
        for (topic, partition), offset in first.items():
            self._consumer.seek(TopicPartition(topic, partition, offset))

    def _dead_letter(self, msg: Message, reason: str) -> None:
        log.warning(
            "malformed message set aside",
            extra={
                "consumer": self.name,
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "reason": reason,
            },
        )
        MALFORMED.labels(self.name, msg.topic()).inc()
        with self._lock:
            self.stats.malformed += 1
        self._dlq.send(msg, reason)

    def lag(self) -> dict[tuple[str, int], int]:
        """Per-partition lag (high watermark - position) of the assigned partitions."""
        out: dict[tuple[str, int], int] = {}
        assignment = self._consumer.assignment()
        if not assignment:
            return out
        positions = self._consumer.position(assignment)
        # no position yet (nothing fetched since assignment): a resumed group starts at its commit
        unknown = [tp for tp in positions if tp.offset < 0]
        committed = {}
        if unknown and self._commit:
            committed = {
                (t.topic, t.partition): t.offset for t in self._consumer.committed(unknown, timeout=5)
            }
        for tp in positions:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            pos = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            pos = pos if pos >= 0 else low
            out[(tp.topic, tp.partition)] = max(0, high - pos)
            LAG.labels(self.name, tp.topic, str(tp.partition)).set(out[(tp.topic, tp.partition)])
        with self._lock:
            self.stats.lag = out
        return out

    def caught_up(self, max_lag: int = 0) -> bool:
        """True once partitions are assigned and every one is within `max_lag` of its high watermark."""
        if not self._consumer.assignment():
            return False
        return all(v <= max_lag for v in self.lag().values())

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; failures in `apply` are logged and retried, never fatal."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("consumer %s batch failed; retrying", self.name)
                time.sleep(0.5)

    def close(self) -> None:
        try:
            self._dlq.flush(5)
        finally:
            self._consumer.close()
