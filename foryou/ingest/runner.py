"""Runs the Redis ingesters, each a BatchConsumer on its own thread (`foryou serve ingest`).

The user state is rebuilt from the topics (foryou.ingest.state_rebuilder) when Redis is found
without it (no marker key) while the ingesters' groups have committed offsets: at start, and by a
check every `consumer_health_interval_s` while running (Redis restarted without persistence or
flushed under the service). Health (AsyncIngestService, gRPC health on its own port): NOT_SERVING
while an ingester makes no progress for `consumer_stall_s` or the state is being rebuilt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import redis
from confluent_kafka import KafkaException

from foryou.core import redis_client
from foryou.core.grpc_server import GrpcServer
from foryou.core.kafka import BatchConsumer, ensure_topics
from foryou.core.settings import Settings
from foryou.core.stall_watch import StallWatch
from foryou.core.tls import server_credentials
from foryou.ingest.action_sequence_ingester import ActionSequenceIngester
from foryou.ingest.engagement_counts_ingester import EngagementCountsIngester
from foryou.ingest.post_content_ingester import PostContentIngester
from foryou.ingest.redis_ingester import IngestConfig, RedisIngester
from foryou.ingest.social_graph_ingester import SocialGraphIngester
from foryou.ingest.state_rebuilder import (
    REBUILDS,
    RebuildError,
    StateRebuilder,
    committed_offsets,
    marker_key,
    write_marker,
)

log = logging.getLogger(__name__)
INGESTERS: tuple[type[RedisIngester[Any]], ...] = (
    SocialGraphIngester,
    PostContentIngester,
    ActionSequenceIngester,
    EngagementCountsIngester,
)


class IngestService:
    """start() spawns one consumer thread per ingester; caught_up() is true once every consumer has
    applied everything up to its partitions' high watermarks; stop() joins and closes."""

    def __init__(
        self,
        settings: Settings,
        config: IngestConfig | None = None,
        ingesters: tuple[type[RedisIngester[Any]], ...] = INGESTERS,
    ) -> None:
        self.settings = settings.require_infra()
        self.config = config or IngestConfig()
        self.redis = redis_client.connect(self.settings.redis_url)  # one server, cluster or sentinel
        self._classes = ingesters
        self.ingesters = [cls(self.settings, self.redis, self.config) for cls in ingesters]
        self.consumers: list[BatchConsumer[Any]] = []
        self._locks: list[threading.Lock] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.started = False
        self.rebuilding = False
        self.rebuilds = 0  # user-state rebuilds this service made (startup and runtime)
        self._check_failed_logged = 0.0

    def start(self) -> IngestService:
        ensure_topics(self.settings, self.settings.topics())
        self._check_state("startup")  # before any live batch: a rebuild then has Redis to itself
        for ing in self.ingesters:
            consumer = ing.make_consumer()
            lock = threading.Lock()
            self.consumers.append(consumer)
            self._locks.append(lock)
            t = threading.Thread(
                target=self._loop, args=(consumer, lock), name=f"ingest-{ing.name}", daemon=True
            )
            self._threads.append(t)
            t.start()
        watch = threading.Thread(target=self._watch_state, name="ingest-state-check", daemon=True)
        self._threads.append(watch)
        watch.start()
        self.started = True
        return self

    def restore_state(self, trigger: str) -> bool:
        """Rebuild the user state from the topics if Redis has lost it: no marker key while the
        ingesters' groups have committed offsets (what they applied is gone and they would go on
        from their commits). Nothing consumed yet: the live ingesters build it from the start, so
        only the marker is written. Returns whether a rebuild ran."""
        prefix = self.settings.redis_prefix
        if self.redis.exists(marker_key(prefix)):
            return False
        if committed_offsets(self.settings, self.ingesters) == 0:
            write_marker(self.redis, prefix)
            return False
        log.warning(
            "user state missing from Redis while the ingesters have consumed their topics: "
            "rebuilding it from Kafka",
            extra={"trigger": trigger, "prefix": prefix},
        )
        REBUILDS.labels(trigger).inc()
        self.rebuilding = True
        try:
            with contextlib.ExitStack() as held:
                for lock in self._locks:  # the live ingesters apply nothing meanwhile
                    held.enter_context(lock)
                rebuilder = StateRebuilder(self.settings, self.redis, self._classes, self.config)
                summary = rebuilder.run(stop=self._stop)
        finally:
            self.rebuilding = False
        self.rebuilds += 1
        log.warning(
            "user state rebuilt from Kafka",
            extra={
                "trigger": trigger,
                "applied": {t.topic: t.applied for t in summary.topics},
                "seconds": round(summary.seconds, 2),
            },
        )
        return True

    def _check_state(self, trigger: str) -> None:
        """`restore_state`, with an unreachable Redis or broker logged (at most every 30 s) rather
        than raised: the next check retries."""
        try:
            self.restore_state(trigger)
        except (redis.RedisError, KafkaException, RebuildError) as e:
            now = time.monotonic()
            if now - self._check_failed_logged >= 30.0:
                self._check_failed_logged = now
                log.warning("user-state check failed; retrying: %s", e, extra={"trigger": trigger})

    def _watch_state(self) -> None:
        # one EXISTS per interval: Redis restarted without persistence, or flushed, under us
        while not self._stop.wait(self.settings.consumer_health_interval_s):
            self._check_state("runtime")

    def _loop(self, consumer: BatchConsumer[Any], lock: threading.Lock) -> None:
        while not self._stop.is_set():
            try:
                with lock:  # caught_up() never sees a consumed-but-unapplied batch
                    consumer.poll_once()
            except Exception:
                log.exception("ingester %s batch failed; retrying", consumer.name)
                time.sleep(0.5)

    def caught_up(self, max_lag: int = 0) -> bool:
        if not self.consumers:
            return False
        for consumer, lock in zip(self.consumers, self._locks, strict=True):
            with lock:
                if not consumer.caught_up(max_lag):
                    return False
        return True

    def wait_caught_up(self, timeout_s: float = 60.0, poll_s: float = 0.2) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.caught_up():
                return True
            time.sleep(poll_s)
        return False

    def assignment(self) -> dict[str, list[tuple[str, int]]]:
        """Per ingester, the partitions this service holds: ingester processes started with the
        same settings share each ingester's consumer group, so they split the partitions."""
        out = {}
        for consumer, lock in zip(self.consumers, self._locks, strict=True):
            with lock:
                out[consumer.name] = consumer.assignment()
        return out

    def stats(self) -> dict[str, Any]:
        return {c.name: c.stats for c in self.consumers}

    def stalled(self, threshold_s: float | None = None) -> list[str]:
        """Ingesters that made no progress for `threshold_s` (default settings.consumer_stall_s):
        broker unreachable, topic missing, or stuck behind. Non-empty -> report NOT_SERVING."""
        return [c.name for c in self.consumers if c.is_stalled(threshold_s)]

    def health(self) -> dict[str, dict[str, Any]]:
        """Per ingester: healthy (last check), reason, seconds since progress."""
        return {c.name: c.health() for c in self.consumers}

    def problems(self) -> list[str]:
        """Why the service should report NOT_SERVING: stalled ingesters, a rebuild in progress."""
        return self.stalled() + (["rebuilding user state"] if self.rebuilding else [])

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)
        for c in self.consumers:
            try:
                c.close()
            except Exception:
                log.exception("closing consumer %s", c.name)
        self.redis.close()

    def __enter__(self) -> IngestService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AsyncIngestService:
    """The same service behind the async start()/stop() protocol of `foryou.core.serve.run_until_signal`,
    with its health: a StallWatch over `IngestService.problems` every `consumer_health_interval_s`
    (gauge foryou_service_stale{service="ingest"}) and, with `health_address`, a gRPC server with
    only the health service, whose overall status ("") is SERVING once started and not stalled."""

    def __init__(
        self, settings: Settings, config: IngestConfig | None = None, health_address: str | None = None
    ) -> None:
        self.service = IngestService(settings, config)
        self.health_address = health_address
        self.server: GrpcServer | None = None
        self.watch = StallWatch(
            "ingest",
            self.service.problems,
            ready=lambda: self.service.started,
            interval_s=self.service.settings.consumer_health_interval_s,
        )
        self._stop = threading.Event()
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        assert self.server is not None, "no health server"
        return self.server.address

    async def start(self) -> None:
        if self.health_address is not None:
            self.server = GrpcServer(
                self.health_address, credentials=server_credentials(self.service.settings)
            )
            await self.server.start(serving=False)  # NOT_SERVING until started (and any rebuild done)
        await asyncio.to_thread(self.service.start)
        self._watch_task = self.watch.start(self.server, self._stop)

    async def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            await self.server.stop(grace_s=1.0)
        await asyncio.to_thread(self.service.stop)

    def caught_up(self) -> bool:
        return self.service.caught_up()


def run_ingesters(
    settings: Settings, stop_event: threading.Event, config: IngestConfig | None = None
) -> None:
    """Run every ingester until `stop_event` is set (the body of `foryou serve ingest`)."""
    service = IngestService(settings, config).start()
    try:
        stop_event.wait()
    finally:
        service.stop()


def wait_caught_up(
    service: IngestService | AsyncIngestService, timeout_s: float = 60.0, poll_s: float = 0.2
) -> bool:
    """Block until every ingester of `service` has applied its topics up to the high watermarks
    (e.g. after `publish_world`, before reading Redis); False on timeout."""
    inner = service.service if isinstance(service, AsyncIngestService) else service
    return inner.wait_caught_up(timeout_s, poll_s)
