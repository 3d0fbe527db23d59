"""Shared Kafka helpers: client configs, topic creation, dead-letter queue and the batch consumer
every ingesting component (Thunder, Redis ingesters, index updater) is built on.

Reliability promises (docs/RELIABILITY.md):
- a message that cannot be decoded, is invalid, oversize or undeliverable is set aside on
  `<topic>.dlq` (whole, or truncated when too big) and every other message of its batch is applied;
- a batch is committed only after its dead letters are acknowledged and `apply` returned: a failed
  dead-letter write or apply rewinds the batch, nothing is skipped;
- a consumer survives broker restarts (a Tansu broker without storage comes back empty: topics are
  re-created and re-read from the start) and partition changes, and says when it cannot progress
  (`seconds_since_progress`, `is_stalled`, gauge `foryou_kafka_consumer_seconds_since_progress`).
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import operator
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import Counter, Gauge, Histogram

from foryou.core.events import InvalidEvent
from foryou.core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

CONSUMED = Counter("foryou_kafka_consumed_total", "Messages consumed", ["consumer", "topic"])
APPLIED = Counter("foryou_kafka_applied_total", "Decoded messages applied", ["consumer", "topic"])
MALFORMED = Counter(
    "foryou_kafka_malformed_total", "Messages sent to the dead-letter topic", ["consumer", "topic"]
)
DEAD_LETTERS = Counter(
    "foryou_kafka_dead_letters_total",
    "Messages set aside, by kind (decode, invalid, oversize, undeliverable)",
    ["consumer", "topic", "kind"],
)
DEAD_LETTERS_TRUNCATED = Counter(
    "foryou_kafka_dead_letters_truncated_total", "Dead letters forwarded truncated (too big)", ["consumer"]
)
DEAD_LETTER_FAILURES = Counter(
    "foryou_kafka_dead_letter_failures_total",
    "Dead-letter writes that failed; the batch was rewound, not committed",
    ["consumer"],
)
COMMIT_FAILURES = Counter("foryou_kafka_commit_failures_total", "Offset commits that failed", ["consumer"])
REINITS = Counter(
    "foryou_kafka_consumer_reinit_total",
    "Re-subscriptions / re-assignments after broker restarts, recreated topics, partition changes",
    ["consumer", "reason"],
)
LAG = Gauge("foryou_kafka_consumer_lag", "High watermark minus position", ["consumer", "topic", "partition"])
SINCE_PROGRESS = Gauge(
    "foryou_kafka_consumer_seconds_since_progress",
    "Seconds since the consumer last applied a batch or confirmed it is caught up and healthy",
    ["consumer"],
)
HEALTHY = Gauge(
    "foryou_kafka_consumer_healthy",
    "1 when the last health check reached the broker, found the topics and saw the consumer keep up",
    ["consumer"],
)
BATCH_SECONDS = Histogram(
    "foryou_kafka_batch_apply_seconds",
    "Time to decode and apply one consumed batch",
    ["consumer"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


# ------------------------------------------------------------------------------ client configs

# set by the code, never by FORYOU_KAFKA_CONFIG: they carry the consumers' semantics (manual commits,
# per-component groups) or have their own setting (FORYOU_KAFKA_BOOTSTRAP)
PROTECTED_PROPERTIES = frozenset(
    {
        "bootstrap.servers",
        "group.id",
        "enable.auto.commit",
        "enable.partition.eof",
        "enable.auto.offset.store",
    }
)


def parse_kafka_config(text: str) -> dict[str, str]:
    """librdkafka properties from `Settings.kafka_config`: a JSON object, `key=value,key=value`, or a
    properties file (`@/path` or a path; `key=value` lines, `#` comments). Values with commas
    (e.g. sasl.jaas.config) need the JSON or file form."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("kafka_config JSON must be an object")
        return {str(k): _prop_value(v) for k, v in obj.items()}
    if text.startswith("@") or "=" not in text:
        return _parse_properties(Path(text.removeprefix("@")).expanduser().read_text())
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"kafka_config entry {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _prop_value(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _parse_properties(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)$", line)
        if m is None:
            raise ValueError(f"kafka properties line {line!r} is not key=value")
        out[m.group(1)] = m.group(2).strip()
    return out


@functools.lru_cache(maxsize=16)
def _properties(text: str) -> tuple[tuple[str, str], ...]:
    props = parse_kafka_config(text)
    ignored = sorted(PROTECTED_PROPERTIES & props.keys())
    if ignored:
        log.warning("kafka_config properties ignored (set by foryou): %s", ", ".join(ignored))
    return tuple((k, v) for k, v in props.items() if k not in PROTECTED_PROPERTIES)


def kafka_properties(settings: Settings) -> dict[str, str]:
    """The operator's extra librdkafka properties (FORYOU_KAFKA_CONFIG), merged into every client."""
    return dict(_properties(settings.kafka_config))


def _merge(settings: Settings, base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    # defaults < the call site's tuning < the operator's properties (security, sizes, timeouts)
    conf = {**base, **overrides}
    conf.update(kafka_properties(settings))
    return conf


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
        "compression.type": "none",
    }
    return _merge(settings, base, overrides)


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
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
    return _merge(settings, base, overrides)


def admin_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return _merge(settings, {"bootstrap.servers": settings.kafka_bootstrap}, overrides)


class _RepeatFilter(logging.Filter):
    """librdkafka repeats a failing connect every few ms while a broker is down, from every client:
    let one line per distinct message (numbers ignored) through per `window_s`."""

    def __init__(self, window_s: float = 30.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True  # debug output someone asked for (`debug` property) is never thinned
        key = re.sub(r"\d+", "#", record.getMessage())
        now = time.monotonic()
        with self._lock:
            if now - self._seen.get(key, -1e9) < self.window_s:
                return False
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[key] = now
        return True


# librdkafka's own log lines go through Python logging (structured, leveled) instead of raw
# stderr; they are delivered when the client is polled, so a closed-down client stays quiet
RDKAFKA_LOG = logging.getLogger("foryou.rdkafka")
RDKAFKA_LOG.addFilter(_RepeatFilter())


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    return Producer(producer_config(settings, **overrides), logger=RDKAFKA_LOG)


def make_admin(settings: Settings, **overrides: Any) -> AdminClient:
    return AdminClient(admin_config(settings, **overrides), logger=RDKAFKA_LOG)


def ensure_topics(settings: Settings, topics: dict[str, int], timeout_s: float = 10.0) -> None:
    """Create missing topics with the given partition counts and the settings' replication factor
    (`Settings.replication`); existing ones are left alone."""
    admin = make_admin(settings)
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [
        NewTopic(t, num_partitions=n, replication_factor=settings.replication(t))
        for t, n in topics.items()
        if t not in existing
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
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=RDKAFKA_LOG)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=1.0)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise


# -------------------------------------------------------------------------------- dead letters


class DeadLetterError(RuntimeError):
    """A dead letter was not acknowledged: its batch must be neither applied nor committed."""


# the broker or the producer refuses the record for its size: forward a truncated copy instead
_SIZE_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
_RECORD_OVERHEAD = 1024  # record + batch framing and headers beyond key/value/header bytes, generous


@dataclass(slots=True)
class _Letter:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]


class DeadLetterQueue:
    """Sets aside a message that cannot be decoded or applied: same key and value on `<topic>.dlq`,
    with headers dlq.reason, dlq.topic / dlq.partition / dlq.offset / dlq.timestamp (origin),
    dlq.size (original value bytes), dlq.consumer + dlq.consumer_group (which consumer set it aside:
    three consumers read `posts`, each dead-letters a bad message once) and dlq.truncated. A value
    too big for the dead-letter producer goes as its first `dlq_truncate_bytes` (dlq.truncated=1).

    `send` only queues; `confirm` waits for the acknowledgements and raises DeadLetterError if any
    letter was not written, so the caller can keep the batch uncommitted."""

    def __init__(
        self,
        settings: Settings,
        producer: Producer | None = None,
        *,
        consumer: str = "",
        group_id: str = "",
    ) -> None:
        self._settings = settings
        self.consumer = consumer
        self.group_id = group_id
        self.max_bytes = settings.dlq_max_message_bytes
        self.truncate_bytes = max(1, min(settings.dlq_truncate_bytes, self.max_bytes - _RECORD_OVERHEAD))
        self._timeout_s = settings.dlq_timeout_s
        self._producer = producer or make_producer(
            settings,
            **{
                "message.max.bytes": self.max_bytes,
                "message.timeout.ms": max(1000, int(settings.dlq_timeout_s * 1000)),
                "linger.ms": 0,  # dead letters are rare and confirmed right away
            },
        )
        self._failed: list[tuple[KafkaError, _Letter, bool]] = []
        self._lock = threading.Lock()
        self.truncated = 0

    def send(self, msg: Message, reason: str) -> None:
        """Queue `msg` for the dead-letter topic (truncated if it cannot go whole)."""
        topic = msg.topic() or "unknown"
        value = msg.value()
        size = len(value) if value is not None else 0
        headers: list[tuple[str, str | bytes | None]] = [
            ("dlq.reason", reason.encode()[:1000]),
            ("dlq.topic", topic.encode()),
            ("dlq.partition", str(msg.partition()).encode()),
            ("dlq.offset", str(msg.offset()).encode()),
            ("dlq.timestamp", str(msg.timestamp()[1]).encode()),
            ("dlq.size", str(size).encode()),
            ("dlq.consumer", self.consumer.encode()),
            ("dlq.consumer_group", self.group_id.encode()),
        ]
        letter = _Letter(self._settings.dlq_topic(topic), msg.key(), value, headers)
        key_len = len(letter.key or b"")
        header_len = sum(len(k) + len(v or b"") for k, v in headers)
        self._produce(letter, truncate=size + key_len + header_len + _RECORD_OVERHEAD > self.max_bytes)

    def _produce(self, letter: _Letter, truncate: bool) -> None:
        value = letter.value
        if truncate and value is not None:
            value = value[: self.truncate_bytes]
        headers = [*letter.headers, ("dlq.truncated", b"1" if truncate else b"0")]

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                with self._lock:
                    self._failed.append((err, letter, truncate))

        try:
            self._producer.produce(
                letter.topic, key=letter.key, value=value, headers=headers, on_delivery=on_delivery
            )
        except KafkaException as e:
            if not truncate and e.args[0].code() in _SIZE_ERRORS:
                self._produce(letter, truncate=True)
                return
            raise DeadLetterError(f"dead letter to {letter.topic} refused: {e.args[0]}") from e
        except BufferError as e:
            raise DeadLetterError(f"dead-letter queue full: {e}") from e
        if truncate:
            self.truncated += 1
        self._producer.poll(0)

    def confirm(self, timeout_s: float | None = None) -> None:
        """Wait until every queued letter is acknowledged; DeadLetterError if one was not. A letter
        the broker refuses for its size is sent again truncated."""
        timeout = self._timeout_s if timeout_s is None else timeout_s
        for _ in range(2):  # second round: the truncated resends
            remaining = self._producer.flush(timeout)
            if remaining:
                # drop them so they are not written later, after the batch was already retried
                self._producer.purge(in_queue=True, in_flight=False)
                self._producer.poll(0)
                with self._lock:
                    self._failed.clear()
                raise DeadLetterError(f"{remaining} dead letters not acknowledged within {timeout}s")
            with self._lock:
                failed, self._failed = self._failed, []
            if not failed:
                return
            fatal = [
                (err, letter) for err, letter, trunc in failed if trunc or err.code() not in _SIZE_ERRORS
            ]
            if fatal:
                raise DeadLetterError(f"dead letter to {fatal[0][1].topic} failed: {fatal[0][0]}")
            for _err, letter, _trunc in failed:
                self._produce(letter, truncate=True)
        raise DeadLetterError("dead letters failed after truncation")

    def flush(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)


# ------------------------------------------------------------------------------- batch consumer


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
    malformed: int = 0  # set aside on the dead-letter topic (any kind)
    batches: int = 0
    dead_letter_failures: int = 0
    reinits: int = 0
    lag: dict[tuple[str, int], int] = field(default_factory=dict)


BatchDecoder = Callable[[list[bytes | None]], tuple[Any, Sequence[tuple[int, str]]]]

# consumer errors about one message (it is set aside); every other error is about the connection
_MESSAGE_ERRORS = frozenset({KafkaError._BAD_MSG, KafkaError._BAD_COMPRESSION, KafkaError.MSG_SIZE_TOO_LARGE})
_MISSING_TOPIC = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})
_UNSUPPORTED = frozenset({KafkaError._UNSUPPORTED_FEATURE, KafkaError.UNSUPPORTED_VERSION})


class _DescribeUnsupported(Exception):
    pass


class BatchConsumer(Generic[T]):
    """Consume in batches, decode each message, set aside what cannot be applied, hand the decoded
    batch to `apply`, then commit. Set aside (dead-lettered with the reason, counted, logged) are:
    undecodable and invalid (`InvalidEvent`) messages, messages over `consumer_max_message_bytes`
    (never decoded) and messages the client could not deliver intact. The dead letters are
    acknowledged before `apply` runs; if that fails, or `apply` raises, the consumer seeks back to the
    start of the batch and raises: nothing is committed past a message that was not handled.

    With `decode_batch` instead of `decode`, the raw values of a whole batch go to one call that
    returns (payload, [(index of a malformed value, reason), ...]); `apply` then gets that payload
    (and is not called when every message was malformed). No per-message `Decoded` is built: for
    high-rate consumers that decode a batch into columns.

    With `group_id` the consumer subscribes (committed offsets, rebalancing). With `start="beginning"`
    and no commits (`commit=False`) it assigns every partition from offset 0 — the full-replay mode
    in-memory stores use to rebuild their state on start.

    Every `consumer_health_interval_s` it checks the broker, its topics (ids and partition counts)
    and its positions: a topic that disappeared is re-created (`kafka_recreate_topics`) and, like a
    topic that came back with a new id (a broker restarted without storage), read again from the
    start; new partitions are picked up; a position beyond the end of its partition (the broker lost
    data) restarts that partition. `seconds_since_progress()` / `is_stalled()` tell a service when the
    consumer has been unable to progress (broker down, topic missing, stuck behind).
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
        self._group_id = group_id or f"{name}-replay"
        self.client_config = consumer_config(settings, self._group_id, **(consumer_overrides or {}))
        self._consumer = Consumer(self.client_config, logger=RDKAFKA_LOG)
        self._dlq = dlq or DeadLetterQueue(settings, consumer=name, group_id=self._group_id)
        if not self._dlq.consumer:
            self._dlq.consumer, self._dlq.group_id = name, self._group_id
        self._max_bytes = settings.consumer_max_message_bytes
        self.stats = ConsumerStats()
        self._assigned = False
        self._subscribed = False  # subscribe() (group) rather than assign(): subclasses may assign
        self._lock = threading.Lock()
        self._closed = False
        # health: see _check_health
        self._admin: AdminClient | None = None
        self._describe = True
        self._next_check = 0.0
        self._last_progress = time.monotonic()
        self._polled = False
        self._consumed_since_check = False
        self._healthy = True
        self._unhealthy_reason = ""
        self._unhealthy_since = 0.0
        self._topic_ids: dict[str, str | None] = {}
        self._partitions: dict[str, int] = {}
        self._lost_topics: set[str] = set()
        self._reset_topics: set[str] = set()
        self._empty_since: float | None = None
        self._paused: list[TopicPartition] = []
        self._error_logged: dict[int, float] = {}
        ref = weakref.ref(self)
        SINCE_PROGRESS.labels(name).set_function(
            lambda: _call(ref, BatchConsumer.seconds_since_progress, 0.0)
        )
        HEALTHY.labels(name).set_function(lambda: _call(ref, lambda c: float(c._healthy), 0.0))

    # ------------------------------------------------------------------ assignment

    def _ensure_assigned(self) -> None:
        if self._assigned:
            return
        if self._replay:
            md = self._consumer.list_topics(timeout=10)
            tps = []
            for t in self.topics:
                if t not in md.topics or not md.topics[t].partitions:
                    raise RuntimeError(f"topic {t} does not exist")
                tps += [TopicPartition(t, p, OFFSET_BEGINNING) for p in sorted(md.topics[t].partitions)]
            self._consumer.assign(tps)
        else:
            self._consumer.subscribe(self.topics, on_assign=self._on_assign)
            self._subscribed = True
        self._assigned = True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions of a topic that came back empty (recreated) start from the beginning, not from
        a commit made on the old topic."""
        if not self._reset_topics:
            return  # the client assigns at the committed offsets
        for tp in partitions:
            if tp.topic in self._reset_topics:
                tp.offset = OFFSET_BEGINNING
        self._reset_topics -= {tp.topic for tp in partitions}
        consumer.assign(partitions)

    # ------------------------------------------------------------------ consuming

    def poll_once(self, timeout_s: float | None = None) -> int:
        """Consume, decode, apply and commit one batch. Returns the number of messages consumed."""
        if not self._polled:  # the stall clock starts with the first poll, not at construction
            self._polled = True
            self._last_progress = time.monotonic()
        if time.monotonic() >= self._next_check:
            self._check_health()
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
        if consumed:
            if self._commit:
                self._commit_positions()
            self._last_progress = time.monotonic()
            self._consumed_since_check = True
            for t in set(map(Message.topic, msgs)) - {None}:
                CONSUMED.labels(self.name, t).inc(consumed)
                APPLIED.labels(self.name, t).inc(applied)
        with self._lock:
            self.stats.consumed += consumed
            self.stats.applied += applied
            self.stats.batches += 1
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - t0)
        return consumed

    def _split(self, msgs: list[Message]) -> tuple[list[Message], list[tuple[Message, str]]]:
        """(messages to decode, [(message, reason) to set aside]): client errors about one message
        and oversize messages are set aside; connection-level errors are logged and skipped."""
        errors = list(map(Message.error, msgs))  # C-level loops: no Python step per message
        ok = msgs
        aside: list[tuple[Message, str]] = []
        # `is not`, never ==: KafkaError == None leaves a TypeError pending (confluent-kafka 2.x),
        # which surfaced as a SystemError on the first batch holding a client error event
        if any(map(operator.is_not, errors, itertools.repeat(None))):
            ok = []
            for m, err in zip(msgs, errors, strict=True):
                if err is None:
                    ok.append(m)
                elif err.code() in _MESSAGE_ERRORS and _has_offset(m):
                    aside.append((m, f"undeliverable: {err.str()}"))
                elif err.code() != KafkaError._PARTITION_EOF:
                    self._log_client_error(err)
        if ok and max(map(len, ok)) > self._max_bytes:
            limit = self._max_bytes
            aside += [(m, f"oversize: {len(m)} bytes > {limit}") for m in ok if len(m) > limit]
            ok = [m for m in ok if len(m) <= limit]
        return ok, aside

    def _decode_apply(self, msgs: list[Message]) -> tuple[int, int]:
        """Per-message decode into `Decoded`s, then apply. Returns (consumed, applied)."""
        assert self._decode is not None
        ok, aside = self._split(msgs)
        consumed = len(ok) + len(aside)
        decoded: list[Decoded[T]] = []
        for m in ok:
            raw = m.value()
            if raw is None:
                aside.append((m, "decode: message without a value"))
                continue
            try:
                value = self._decode(raw)
            except InvalidEvent as e:
                aside.append((m, f"invalid: {e}"))
                continue
            except Exception as e:  # malformed: set aside, never crash
                aside.append((m, f"decode: {type(e).__name__}: {e}"))
                continue
            # a delivered message has topic, partition and offset: no cast() call per message
            t, p, o = m.topic(), m.partition(), m.offset()
            decoded.append(Decoded(value, t, p, o, m.timestamp()[1], m.key()))  # type: ignore[arg-type]
        self._set_aside(aside, msgs)
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
        ok, aside = self._split(msgs)
        consumed = len(ok) + len(aside)
        applied = 0
        payload: Any = None
        if ok:
            values: list[bytes | None] = list(map(Message.value, ok))
            try:
                payload, bad = self._decode_batch(values)
            except Exception:
                self._rewind(msgs)  # a decoder bug, not bad data: retry rather than skip
                raise
            aside += [(ok[i], r if r.startswith("invalid:") else f"decode: {r}") for i, r in bad]
            applied = len(ok) - len(bad)
        self._set_aside(aside, msgs)
        if applied:
            try:
                self._apply(payload)
            except Exception:
                self._rewind(msgs)
                raise
        return consumed, applied

    def _set_aside(self, aside: list[tuple[Message, str]], batch: list[Message]) -> None:
        """Dead-letter every set-aside message of the batch and wait for the acknowledgements; on a
        failure rewind the batch (nothing applied, nothing committed) and raise DeadLetterError."""
        if not aside:
            return
        try:
            for m, reason in aside:
                self._dlq.send(m, reason)
            self._dlq.confirm()
        except (DeadLetterError, KafkaException) as e:
            DEAD_LETTER_FAILURES.labels(self.name).inc()
            with self._lock:
                self.stats.dead_letter_failures += 1
            log.error(
                "dead-letter write failed; batch not applied, will be retried",
                extra={"consumer": self.name, "error": str(e), "messages": len(batch)},
            )
            self._rewind(batch)
            if self._settings.kafka_recreate_topics:  # a DLQ topic that vanished with the broker
                self._recreate({self._settings.dlq_topic(cast(str, m.topic())) for m, _ in aside}, 1)
            raise DeadLetterError(str(e)) from e
        for m, reason in aside:
            topic = cast(str, m.topic())
            log.warning(
                "message set aside",
                extra={
                    "consumer": self.name,
                    "group": self._group_id,
                    "topic": topic,
                    "partition": m.partition(),
                    "offset": m.offset(),
                    "bytes": len(m),
                    "reason": reason,
                },
            )
            MALFORMED.labels(self.name, topic).inc()
            DEAD_LETTERS.labels(self.name, topic, reason.split(":", 1)[0]).inc()
        DEAD_LETTERS_TRUNCATED.labels(self.name).inc(self._dlq.truncated)
        self._dlq.truncated = 0
        with self._lock:
            self.stats.malformed += len(aside)

    def _rewind(self, msgs: list[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for m in msgs:
            offset = m.offset()
            if offset is None or offset < 0:
                continue
            key = (cast(str, m.topic()), cast(int, m.partition()))
            first[key] = min(first.get(key, offset), offset)
        for (topic, partition), offset in first.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as e:  # e.g. revoked meanwhile: its next owner starts at the commit
                log.warning("rewind of %s[%d] failed: %s", topic, partition, e)

    def _commit_positions(self) -> None:
        """Commit the application positions (last message handed to us + 1). A partition rewound
        after a failed batch has no position until it is consumed again, so it is not committed."""
        try:
            positions = self._consumer.position(self._consumer.assignment())
            done = [tp for tp in positions if tp.offset >= 0]
            if done:
                self._consumer.commit(offsets=done, asynchronous=False)
        except KafkaException as e:  # the next commit covers it; a restart re-reads, never skips
            COMMIT_FAILURES.labels(self.name).inc()
            self._log_client_error(e.args[0], "commit failed")

    def _log_client_error(self, err: KafkaError, what: str = "consumer error") -> None:
        now = time.monotonic()
        if now - self._error_logged.get(err.code(), -1e9) >= 30.0:
            self._error_logged[err.code()] = now
            log.warning("%s %s: %s", self.name, what, err)

    # ------------------------------------------------------------------ health

    def seconds_since_progress(self) -> float:
        """Seconds since a batch was applied or a health check found the consumer caught up (or
        consuming) on a reachable broker. Grows while the broker is down, a topic is missing, or
        the consumer is stuck behind."""
        if self._closed:
            return 0.0
        return time.monotonic() - self._last_progress

    def is_stalled(self, threshold_s: float | None = None) -> bool:
        """True when the consumer has made no progress for `threshold_s` (default consumer_stall_s)."""
        threshold = self._settings.consumer_stall_s if threshold_s is None else threshold_s
        return self.seconds_since_progress() > threshold

    def health(self) -> dict[str, Any]:
        """For status pages: healthy (last check), reason, seconds since progress."""
        return {
            "healthy": self._healthy,
            "reason": self._unhealthy_reason,
            "seconds_since_progress": round(self.seconds_since_progress(), 3),
        }

    def _check_health(self) -> None:
        now = time.monotonic()
        self._next_check = now + self._settings.consumer_health_interval_s
        consumed, self._consumed_since_check = self._consumed_since_check, False
        try:
            state = self._topic_state()
        except KafkaException as e:
            self._pause_fetching()
            self._mark_unhealthy(f"broker unreachable: {e.args[0]}")
            return
        missing = sorted(t for t, (_, n) in state.items() if n == 0)
        if missing:
            self._pause_fetching()
            self._lost_topics.update(missing)
            if self._settings.kafka_recreate_topics:
                for t in missing:
                    self._recreate({t}, self._partitions.get(t) or self._settings.partitions)
                    self._recreate({self._settings.dlq_topic(t)}, 1)
            self._mark_unhealthy(f"topics missing: {', '.join(missing)}")
            return
        recreated = set(self._lost_topics) | {
            t for t, (tid, _) in state.items() if tid and self._topic_ids.get(t) not in (None, tid)
        }
        resized = {t for t, (_, n) in state.items() if self._partitions.get(t, n) != n} - recreated
        self._lost_topics.clear()
        self._topic_ids = {t: tid for t, (tid, _) in state.items()}
        self._partitions = {t: n for t, (_, n) in state.items()}
        try:
            if self._assigned and recreated:
                # a partition's pause outlives re-assignment in librdkafka: resume, then replace
                self._resume_fetching()
                self._reinit("topic recreated", recreated)
                self._mark_healthy(now)
                return
            resumed = self._resume_fetching()
            if self._assigned and resized:
                self._resize(resized)
            problem = self._check_positions(consumed or resumed, now) if self._assigned else ""
        except KafkaException as e:
            self._mark_unhealthy(f"broker unreachable: {e.args[0]}")
            return
        if problem:
            self._mark_unhealthy(problem)
        else:
            self._mark_healthy(now)

    def _topic_state(self) -> dict[str, tuple[str | None, int]]:
        """{topic: (topic id or None, partition count; 0 = missing)}; KafkaException if unreachable."""
        timeout = max(0.5, min(2.0, self._settings.consumer_health_interval_s))
        if self._describe:
            try:
                return self._describe_topics(timeout)
            except _DescribeUnsupported:
                self._describe = False  # an older broker: no topic ids, partition counts only
        md = self._consumer.list_topics(timeout=timeout)
        out: dict[str, tuple[str | None, int]] = {}
        for t in self.topics:
            tm = md.topics.get(t)
            out[t] = (None, 0 if tm is None or tm.error is not None else len(tm.partitions))
        return out

    def _describe_topics(self, timeout: float) -> dict[str, tuple[str | None, int]]:
        if self._admin is None:
            self._admin = make_admin(self._settings)
        futures = self._admin.describe_topics(TopicCollection(self.topics), request_timeout=timeout)
        out: dict[str, tuple[str | None, int]] = {}
        for t, fut in futures.items():
            try:
                d = fut.result(timeout=timeout + 1.0)
            except FutureTimeout as e:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "describe_topics timed out")) from e
            except KafkaException as e:
                code = e.args[0].code()
                if code in _MISSING_TOPIC:
                    out[t] = (None, 0)
                    continue
                if code in _UNSUPPORTED:
                    raise _DescribeUnsupported from e
                raise
            out[t] = (str(d.topic_id) if d.topic_id is not None else None, len(d.partitions))
        return out

    def _check_positions(self, consumed: bool, now: float) -> str:
        """Seeks partitions whose position is beyond their end (the broker lost data) back to the
        start; returns a problem ("" if none): such a reset, or being behind with nothing consumed
        since the last check."""
        assignment = self._consumer.assignment()
        if not assignment:
            self._maybe_resubscribe(now)
            return ""
        self._empty_since = None
        behind = 0
        reset = []
        for tp in self._consumer.position(assignment):
            if tp.offset < 0:
                continue  # nothing consumed yet (or just rewound): no position to judge
            # the high watermark of the last fetch response: exact, and no round trip (Tansu's
            # ListOffsets answers the start of the last record batch, not its end)
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                continue
            if tp.offset > high:
                reset.append(tp)
            elif high > tp.offset:
                behind += high - tp.offset
        if reset:
            log.warning(
                "consumer positions beyond the end of their partitions (broker lost its data); "
                "reading them again from the start",
                extra={"consumer": self.name, "partitions": [(tp.topic, tp.partition) for tp in reset]},
            )
            self._count_reinit("offset beyond end")
            for tp in reset:
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
            return "positions beyond the end of their partitions: re-reading"
        if behind and not consumed:
            return f"{behind} messages behind and none consumed since the last check"
        return ""

    def _maybe_resubscribe(self, now: float) -> None:
        """A group member left with no partitions after a broker restart can stay so (the client
        rejoined against stale metadata): re-subscribe when that lasts several session timeouts."""
        if not self._subscribed:
            return
        if self._empty_since is None:
            self._empty_since = now
            return
        patience = max(10.0, 3 * self._settings.kafka_session_timeout_ms / 1000)
        if now - self._empty_since > patience:
            self._empty_since = now
            self._reinit("no partitions assigned", set())

    def _reinit(self, reason: str, reset_topics: set[str]) -> None:
        """Subscribe / assign again from scratch. Topics in `reset_topics` came back empty: they are
        read from the start (a group's commits on the old topic are ignored)."""
        log.warning("consumer %s re-initialising: %s %s", self.name, reason, sorted(reset_topics))
        self._count_reinit(reason)
        if self._subscribed:
            self._reset_topics |= reset_topics
            self._consumer.unsubscribe()
        self._assigned = False
        self._subscribed = False
        self._ensure_assigned()

    def _count_reinit(self, reason: str) -> None:
        REINITS.labels(self.name, reason).inc()
        with self._lock:
            self.stats.reinits += 1

    def _resize(self, topics: set[str]) -> None:
        """Partition count changed: a group rebalances on re-subscribe; an assigned consumer adds the
        new partitions from their start and drops vanished ones."""
        log.warning(
            "consumer %s: partition count changed: %s", self.name, {t: self._partitions[t] for t in topics}
        )
        if self._subscribed:
            self._reinit("partitions changed", set())
            return
        self._count_reinit("partitions changed")
        current = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        wanted = {(t, p) for t in topics for p in range(self._partitions[t])}
        gone = [TopicPartition(t, p) for t, p in current if t in topics and (t, p) not in wanted]
        new = [TopicPartition(t, p, OFFSET_BEGINNING) for t, p in sorted(wanted - current)]
        if gone:
            self._consumer.incremental_unassign(gone)
        if new:
            self._consumer.incremental_assign(new)

    def _pause_fetching(self) -> None:
        """While the broker is gone or a topic missing, fetch nothing: when it comes back, the topic
        may be a new, empty one (a restarted Tansu) and the old positions would read it from the
        middle. The next healthy check resumes (same topic) or re-initialises (new topic)."""
        if self._paused:
            return
        try:
            assignment = self._consumer.assignment()
            if assignment:
                self._consumer.pause(assignment)
                self._paused = assignment
        except KafkaException as e:
            self._log_client_error(e.args[0], "pause failed")

    def _resume_fetching(self) -> bool:
        if not self._paused:
            return False
        paused, self._paused = self._paused, []
        try:
            self._consumer.resume(paused)
        except KafkaException as e:  # e.g. revoked meanwhile: a new assignment is not paused
            self._log_client_error(e.args[0], "resume failed")
        return True

    def _recreate(self, topics: set[str], partitions: int) -> None:
        try:
            ensure_topics(self._settings, dict.fromkeys(topics, partitions), timeout_s=5.0)
        except KafkaException as e:
            self._log_client_error(e.args[0], "re-creating topics failed")

    def _mark_unhealthy(self, reason: str) -> None:
        if self._healthy or reason != self._unhealthy_reason:
            log.warning("consumer %s cannot progress: %s", self.name, reason)
        if self._healthy:
            self._unhealthy_since = time.monotonic()
        self._healthy = False
        self._unhealthy_reason = reason

    def _mark_healthy(self, now: float) -> None:
        if not self._healthy:
            log.info("consumer %s healthy again after %.1f s", self.name, now - self._unhealthy_since)
        self._healthy = True
        self._unhealthy_reason = ""
        self._last_progress = now

    # ------------------------------------------------------------------ lag

    def lag(self) -> dict[tuple[str, int], int]:
        """Per-partition lag (high watermark - position) of the assigned partitions. A position past
        the end (the broker lost what was read) counts everything in the partition as unread."""
        out: dict[tuple[str, int], int] = {}
        assignment = self._consumer.assignment()
        if not assignment:
            return out
        positions = self._consumer.position(assignment)
        # no position yet (nothing fetched since assignment): a resumed group starts at its commit
        unknown = [tp for tp in positions if tp.offset < 0]
        committed: dict[tuple[str, int], int] = {}
        if unknown and self._commit:
            committed = {
                (t.topic, t.partition): t.offset for t in self._consumer.committed(unknown, timeout=5)
            }
        for tp in positions:
            key = (tp.topic, tp.partition)
            low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            # Tansu's ListOffsets can answer the start of the last record batch: the last fetch
            # response's watermark is never lower than the truth once fetched
            high = max(high, self._consumer.get_watermark_offsets(tp, cached=True)[1])
            pos = tp.offset if tp.offset >= 0 else committed.get(key, -1)
            pos = pos if 0 <= pos <= high else low
            out[key] = max(0, high - pos)
            LAG.labels(self.name, key[0], str(key[1])).set(out[key])
        with self._lock:
            self.stats.lag = out
        return out

    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition)s this consumer holds now: in a group, its share of the
        partitions (ingester replicas split them); empty before the first assignment."""
        try:
            return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())
        except KafkaException:
            return []

    def caught_up(self, max_lag: int = 0) -> bool:
        """True once partitions are assigned, the last health check passed and every partition is
        within `max_lag` of its high watermark; False (never an exception) while the broker is
        unreachable."""
        if not self._healthy:
            return False
        try:
            if not self._consumer.assignment():
                return False
            return all(v <= max_lag for v in self.lag().values())
        except KafkaException:
            return False

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; failures in `apply` are logged and retried, never fatal."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("consumer %s batch failed; retrying", self.name)
                time.sleep(0.5)

    def close(self) -> None:
        self._closed = True
        try:
            self._dlq.flush(5)
        finally:
            self._consumer.close()


def _has_offset(m: Message) -> bool:
    offset = m.offset()
    return offset is not None and offset >= 0


def _call(ref: weakref.ref[BatchConsumer[Any]], fn: Callable[[Any], float], default: float) -> float:
    """A gauge callback that does not keep its consumer alive."""
    c = ref()
    return fn(c) if c is not None else default
