"""Runs the three Redis ingesters, each a BatchConsumer on its own thread (`foryou serve ingest`)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import redis

from foryou.core.kafka import BatchConsumer, ensure_topics
from foryou.core.settings import Settings
from foryou.ingest.action_sequence_ingester import ActionSequenceIngester
from foryou.ingest.post_content_ingester import PostContentIngester
from foryou.ingest.redis_ingester import IngestConfig, RedisIngester
from foryou.ingest.social_graph_ingester import SocialGraphIngester

log = logging.getLogger(__name__)
INGESTERS: tuple[type[RedisIngester[Any]], ...] = (
    SocialGraphIngester,
    PostContentIngester,
    ActionSequenceIngester,
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
        self.redis = redis.Redis.from_url(self.settings.redis_url)
        self.ingesters = [cls(self.settings, self.redis, self.config) for cls in ingesters]
        self.consumers: list[BatchConsumer[Any]] = []
        self._locks: list[threading.Lock] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def start(self) -> IngestService:
        ensure_topics(self.settings, self.settings.topics())
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
        return self

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

    def stats(self) -> dict[str, Any]:
        return {c.name: c.stats for c in self.consumers}

    def stalled(self, threshold_s: float | None = None) -> list[str]:
        """Ingesters that made no progress for `threshold_s` (default settings.consumer_stall_s):
        broker unreachable, topic missing, or stuck behind. Non-empty -> report NOT_SERVING."""
        return [c.name for c in self.consumers if c.is_stalled(threshold_s)]

    def health(self) -> dict[str, dict[str, Any]]:
        """Per ingester: healthy (last check), reason, seconds since progress."""
        return {c.name: c.health() for c in self.consumers}

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
    """The same service behind the async start()/stop() protocol of `foryou.core.serve.run_until_signal`."""

    def __init__(self, settings: Settings, config: IngestConfig | None = None) -> None:
        self.service = IngestService(settings, config)

    async def start(self) -> None:
        await asyncio.to_thread(self.service.start)

    async def stop(self) -> None:
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
