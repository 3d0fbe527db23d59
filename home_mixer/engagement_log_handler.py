"""Transport-free engagement log: LogEngagementsRequest -> the `engagements` topic (key = user id,
value = the EngagementEvent, exactly what the ingesters and replay read). The gRPC servicer and
in-process callers both use it.

All or nothing: every event is validated before anything is produced; the first bad one rejects
the batch (`InvalidEngagements`, naming `events[i]`). The answer waits for Kafka's delivery
reports: the batch is accepted only once every event was acknowledged (acks=all); a delivery
error, a full producer queue or no report within the deadline is `EngagementLogUnavailable`, and
nothing is claimed. Delivery is at-least-once: events of a failed batch may still have reached the
topic, so a client retry can duplicate some.

Delivery reports are served by one poller thread per handler (librdkafka only reports from poll),
which hands each report to the event loop; a request awaits its own batch's future."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from foryou.core.events import validate_engagement_event
from foryou.core.snowflake import timestamp_ms as post_created_ms
from protos import events_pb2 as ev
from protos import home_mixer_pb2 as pb

log = logging.getLogger(__name__)

ENGAGEMENTS_LOGGED = Counter(
    "foryou_home_mixer_engagements_total",
    "LogEngagements events by outcome (accepted = acknowledged by Kafka)",
    ["outcome"],  # accepted | invalid | unavailable
)


class InvalidEngagements(ValueError):
    """A batch the service must answer with INVALID_ARGUMENT; nothing of it was written."""


class EngagementLogUnavailable(RuntimeError):
    """Kafka did not acknowledge the whole batch (UNAVAILABLE); nothing is claimed as accepted."""


@dataclass(frozen=True, slots=True)
class EngagementLimits:
    max_batch: int = 1000
    # a client clock may run a little ahead; further is a bad timestamp (ms/s mix-up, garbage)
    max_future_skew_ms: int = 5 * 60_000
    # a client may flush events buffered while offline, but not from long ago (a simulator on a
    # fixed historical clock raises this)
    max_age_ms: int = 7 * 24 * 3_600_000


def validate_engagement(e: ev.EngagementEvent, now_ms: int, limits: EngagementLimits) -> None:
    """ValueError naming the first bad field. First the ingesters' own rule (what we accept, they
    apply: ids in range, known action and surface, timestamp and dwell in range), then what a client
    must also get right: an author, a timestamp near the server's clock, not before the post."""
    validate_engagement_event(e, now_ms)
    if e.author_id <= 0:  # optional for the ingesters, but a training row needs the author
        raise ValueError(f"author_id must be positive, got {e.author_id}")
    if e.timestamp_ms > now_ms + limits.max_future_skew_ms:
        raise ValueError(f"timestamp_ms {e.timestamp_ms} is in the future (server time {now_ms})")
    if e.timestamp_ms < now_ms - limits.max_age_ms:
        raise ValueError(f"timestamp_ms {e.timestamp_ms} is older than {limits.max_age_ms} ms")
    # post ids are snowflakes: nobody engages with a post before it exists
    if e.timestamp_ms + limits.max_future_skew_ms < post_created_ms(e.post_id):
        raise ValueError(f"timestamp_ms {e.timestamp_ms} precedes the creation of post {e.post_id}")


def validate_batch(request: pb.LogEngagementsRequest, now_ms: int, limits: EngagementLimits) -> None:
    n = len(request.events)
    if n > limits.max_batch:
        raise InvalidEngagements(f"{n} events in one batch; at most {limits.max_batch} allowed")
    for i, e in enumerate(request.events):
        try:
            validate_engagement(e, now_ms, limits)
        except ValueError as err:
            raise InvalidEngagements(f"events[{i}]: {err}") from None


class _BatchDelivery:
    """Outstanding delivery reports of one batch. `on_delivery` runs on the poller thread; the
    count and the future live on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int) -> None:
        self.loop, self.pending = loop, n
        self.errors: list[str] = []
        self.done: asyncio.Future[None] = loop.create_future()

    def on_delivery(self, err: Any, msg: Any) -> None:
        # RuntimeError: the loop is gone (service stopped), nobody waits for this report
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._record, err)

    def _record(self, err: Any) -> None:
        self.pending -= 1
        if err is not None:
            self.errors.append(str(err))
        if (self.pending <= 0 or err is not None) and not self.done.done():
            self.done.set_result(None)  # the first error already decides: UNAVAILABLE


class EngagementLogHandler:
    """`producer` is a confluent_kafka Producer (or anything with produce(on_delivery=)/poll/flush)
    whose `message.timeout.ms` is about `delivery_timeout_s`, so librdkafka gives up when we do."""

    def __init__(
        self,
        producer: Any,
        topic: str,
        delivery_timeout_s: float = 5.0,
        limits: EngagementLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.producer, self.topic = producer, topic
        self.delivery_timeout_s = delivery_timeout_s
        self.limits = limits or EngagementLimits()
        self.clock = clock
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    async def log_engagements(self, request: pb.LogEngagementsRequest) -> pb.LogEngagementsResponse:
        """Raises InvalidEngagements (nothing written) or EngagementLogUnavailable."""
        n = len(request.events)
        try:
            validate_batch(request, int(self.clock() * 1000), self.limits)
        except InvalidEngagements:
            ENGAGEMENTS_LOGGED.labels("invalid").inc(n)
            raise
        if n == 0:
            return pb.LogEngagementsResponse(accepted=0)
        self._ensure_poller()
        delivery = _BatchDelivery(asyncio.get_running_loop(), n)
        try:
            for e in request.events:
                self.producer.produce(
                    self.topic,
                    key=str(e.user_id).encode(),
                    value=e.SerializeToString(),
                    timestamp=e.timestamp_ms,  # event time, as the world publisher: replay windows use it
                    on_delivery=delivery.on_delivery,
                )
        except BufferError:  # local queue full: the broker has been away for a while
            raise self._unavailable(n, "producer queue full") from None
        except Exception as err:  # noqa: BLE001 - KafkaException and friends: not the client's fault
            raise self._unavailable(n, f"produce failed: {err!r}") from err
        # a little past librdkafka's own message timeout, so its definitive report arrives first
        try:
            await asyncio.wait_for(asyncio.shield(delivery.done), self.delivery_timeout_s + 1.0)
        except TimeoutError:
            wait = self.delivery_timeout_s + 1.0
            raise self._unavailable(n, f"no delivery report within {wait:.1f} s") from None
        if delivery.errors:
            raise self._unavailable(n, f"Kafka delivery failed: {delivery.errors[0]}")
        ENGAGEMENTS_LOGGED.labels("accepted").inc(n)
        return pb.LogEngagementsResponse(accepted=n)

    def _unavailable(self, n: int, reason: str) -> EngagementLogUnavailable:
        ENGAGEMENTS_LOGGED.labels("unavailable").inc(n)
        log.warning("engagement log unavailable: %s", reason)
        return EngagementLogUnavailable(f"engagements not logged ({n} events): {reason}")

    def _ensure_poller(self) -> None:
        if self._poller is None or not self._poller.is_alive():
            self._stop.clear()
            self._poller = threading.Thread(target=self._poll_loop, name="engagement-log-poller", daemon=True)
            self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.producer.poll(0.1)  # returns early once a report was served
            except Exception:  # noqa: BLE001 - keep serving reports; a broken producer fails batches
                log.exception("engagement producer poll failed")
                self._stop.wait(0.5)

    async def close(self, flush_timeout_s: float = 5.0) -> None:
        """Stop the poller and deliver what is still queued."""
        self._stop.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, 1.0)
            self._poller = None
        await asyncio.to_thread(self.producer.flush, flush_timeout_s)
