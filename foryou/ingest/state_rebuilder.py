"""Rebuilds the Redis user state from the Kafka topics: every ingester re-reads its topic from the
start (retention start) up to the end and applies it again, with a consumer of its own that neither
commits nor touches the live ingesters' group offsets.

Re-applying is idempotent, so a rebuild over existing state ends in the state a first ingestion
would have made (from what the topics still hold): social-graph edges are SADD / SREM applied in
order and follower counts recomputed with SCARD, action sequences merge by (user, post) with a
replay-safe eviction watermark, post creates are SET NX and deletes tombstones. Counters are not
idempotent (engagement counts: HINCRBY / ZINCRBY): the key families an ingester names in
`rebuild_clears` are deleted before its topic is replayed. Nothing else is cleared, so keys other
writers own (home_mixer's served history) survive.

The marker key `<prefix>ingest:epoch` is written once the state is complete (a rebuild finished,
or ingestion started on an empty Redis with nothing consumed yet). Its absence is how an ingest
service finds Redis emptied under it (restarted without persistence, flushed) in one EXISTS."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import redis
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, Message, TopicPartition
from prometheus_client import Counter

from foryou.core.kafka import RDKAFKA_LOG, BatchConsumer, DeadLetterQueue, consumer_config, make_admin
from foryou.core.settings import Settings
from foryou.ingest.redis_ingester import IngestConfig, RedisIngester

log = logging.getLogger(__name__)

REBUILDS = Counter(
    "foryou_ingest_state_rebuilds_total",
    "User-state rebuilds from the Kafka topics, by trigger (startup, runtime: Redis found empty; command)",
    ["trigger"],
)
MARKER = "ingest:epoch"
Progress = Callable[[str, str, int], None]  # (ingester, topic, messages consumed so far)


def marker_key(prefix: str) -> str:
    return f"{prefix}{MARKER}"


def write_marker(client: redis.Redis, prefix: str) -> None:
    """The state under `prefix` is complete up to what the ingesters have applied."""
    client.set(marker_key(prefix), str(int(time.time() * 1000)))


class RebuildError(RuntimeError):
    """A topic could not be read to its end (broker unreachable, consumer stalled, timeout)."""


@dataclass(slots=True)
class TopicRebuild:
    ingester: str
    topic: str
    consumed: int = 0
    applied: int = 0
    set_aside: int = 0  # malformed / invalid: dead-lettered when first ingested, skipped here
    cleared: int = 0  # keys of non-idempotent families deleted before the replay


@dataclass(slots=True)
class RebuildSummary:
    topics: list[TopicRebuild] = field(default_factory=list)
    keys: int | None = None  # keys under the prefix afterwards (when counted)
    seconds: float = 0.0

    @property
    def applied(self) -> int:
        return sum(t.applied for t in self.topics)


class _SkipDeadLetters(DeadLetterQueue):
    """The messages a rebuild sets aside were dead-lettered when the live ingesters first read
    them: count them, never send them again."""

    def __init__(self, consumer: str) -> None:  # no producer: nothing is ever sent
        self.consumer, self.group_id, self.truncated, self.skipped = consumer, "", 0, 0

    def send(self, msg: Message, reason: str) -> None:
        self.skipped += 1

    def confirm(self, timeout_s: float | None = None) -> None:
        return None

    def flush(self, timeout_s: float = 10.0) -> None:
        return None


def committed_offsets(settings: Settings, ingesters: Sequence[RedisIngester[Any]]) -> int:
    """Sum of the ingesters' committed group offsets over their topics' partitions: > 0 once they
    have consumed anything (the state then cannot be rebuilt by simply starting from the commits).
    Raises KafkaException when the broker does not answer."""
    total = 0
    for ing in ingesters:
        if ing.config.replay_from_beginning:
            continue  # no group, no commits: every start reads from the beginning anyway
        c = Consumer(consumer_config(settings, ing.group_id), logger=RDKAFKA_LOG)
        try:
            md = c.list_topics(ing.topic, timeout=10)
            tm = md.topics.get(ing.topic)
            if tm is None or tm.error is not None or not tm.partitions:
                continue
            tps = [TopicPartition(ing.topic, p) for p in sorted(tm.partitions)]
            total += sum(max(0, tp.offset) for tp in c.committed(tps, timeout=10))
        finally:
            c.close()
    return total


def active_groups(settings: Settings, ingesters: Sequence[RedisIngester[Any]]) -> list[str]:
    """The ingesters' consumer groups that may have live members (an ingest service is running: a
    rebuild from another process would race its read-merge-write of action sequences). Only a group
    described as EMPTY or DEAD counts as idle: Tansu lists no members, reports its own states as
    UNKNOWN and can hold the answer while a group rebalances (no answer = maybe running).
    Raises KafkaException when the broker is unreachable."""
    admin = make_admin(settings)
    admin.list_topics(timeout=10)  # unreachable broker: an error, not "every group is running"
    idle = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD}
    out = []
    for group in sorted({ing.group_id for ing in ingesters}):  # the live ingesters' groups
        # one group per request: a rebalancing group must not hold the others' answers
        fut = admin.describe_consumer_groups([group], request_timeout=5)[group]
        try:
            state = fut.result(timeout=10).state
        except (KafkaException, FutureTimeout):
            state = None
        if state not in idle:
            out.append(group)
    return out


class StateRebuilder:
    """`run()` replays every ingester's topic into Redis and writes the marker. The live ingesters
    of this process must not apply batches meanwhile (IngestService holds their locks): two
    read-merge-write appliers of the same action sequence could lose each other's items."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        ingesters: Sequence[type[RedisIngester[Any]]],
        config: IngestConfig | None = None,
    ) -> None:
        self.settings = settings
        self.redis = client
        # full replay: every partition assigned from its start, nothing committed
        replay = dataclasses.replace(config or IngestConfig(), replay_from_beginning=True)
        self.ingesters = [cls(settings, client, replay) for cls in ingesters]

    def run(
        self,
        progress: Progress | None = None,
        timeout_s: float | None = None,
        count_keys: bool = False,
        stop: threading.Event | None = None,
    ) -> RebuildSummary:
        """RebuildError if a topic cannot be read to its end (stalled for consumer_stall_s, past
        `timeout_s`, or `stop` set); the marker is then not written, so the next check retries."""
        t0 = time.monotonic()
        deadline = None if timeout_s is None else t0 + timeout_s
        summary = RebuildSummary()
        for ing in self.ingesters:
            summary.topics.append(self._replay(ing, deadline, progress, stop or threading.Event()))
        write_marker(self.redis, self.settings.redis_prefix)
        if count_keys:
            summary.keys = sum(
                1 for _ in self.redis.scan_iter(match=f"{self.settings.redis_prefix}*", count=1000)
            )
        summary.seconds = time.monotonic() - t0
        return summary

    def _replay(
        self,
        ing: RedisIngester[Any],
        deadline: float | None,
        progress: Progress | None,
        stop: threading.Event,
    ) -> TopicRebuild:
        name = f"{ing.name}-rebuild"
        dlq = _SkipDeadLetters(name)
        consumer: BatchConsumer[Any] = ing.make_consumer(name=name, dlq=dlq)
        out = TopicRebuild(ing.name, ing.topic, cleared=self._clear(ing.rebuild_clears))
        batch = ing.config.batch_size or self.settings.consumer_batch_size
        next_check = 0.0
        try:
            while True:
                n = consumer.poll_once()
                if n and progress is not None:
                    progress(ing.name, ing.topic, consumer.stats.consumed)
                now = time.monotonic()
                # caught_up() asks the broker for every partition's end: only when a batch came
                # back short (maybe drained), else every half second
                if n < batch or now >= next_check:
                    next_check = now + 0.5
                    if consumer.caught_up():
                        break
                if consumer.is_stalled():
                    reason = consumer.health()["reason"] or "no progress"
                    raise RebuildError(f"{ing.topic}: cannot read to the end: {reason}")
                if deadline is not None and now > deadline:
                    raise RebuildError(f"{ing.topic}: not read to the end in time")
                if stop.is_set():
                    raise RebuildError(f"{ing.topic}: stopped before the end")
        except KafkaException as e:
            raise RebuildError(f"{ing.topic}: {e.args[0]}") from e
        finally:
            consumer.close()
        out.consumed, out.applied = consumer.stats.consumed, consumer.stats.applied
        out.set_aside = consumer.stats.malformed
        return out

    def _clear(self, patterns: Sequence[str]) -> int:
        deleted = 0
        for pattern in patterns:
            batch: list[bytes] = []
            for key in self.redis.scan_iter(match=f"{self.settings.redis_prefix}{pattern}", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += int(self.redis.unlink(*batch))
                    batch.clear()
            if batch:
                deleted += int(self.redis.unlink(*batch))
        return deleted
