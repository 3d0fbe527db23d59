"""Publishes one ServedEvent per selected post to the `served` topic (key = viewer id): the feature
log that joins with engagements into training data (record contents: `served_record.py`).

Delivery is asynchronous, so a Kafka outage surfaces in delivery reports (or a full local queue),
after the response that produced the events has gone. The side effect therefore keeps the log's
state: every lost event is counted, and while the latest outcome is a failure `failing` is true,
which the handler reports as the `kafka` dependency in `degraded` (and the degraded metric)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from candidate_pipeline import SideEffect
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery
from home_mixer.side_effects.served_record import served_events

log = logging.getLogger(__name__)

SERVED_LOST = Counter(
    "foryou_home_mixer_served_events_lost_total",
    "ServedEvents not delivered to the served topic (delivery error or full producer queue)",
    ["reason"],
)


class ServedImpressionsSideEffect(SideEffect[ScoredPostsQuery, PostCandidate]):
    """`producer` is a confluent_kafka Producer (or anything with produce(on_delivery=)/poll)."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.failing = False  # the latest delivery outcome was a failure
        self.last_error = ""

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.failing = False
            return
        SERVED_LOST.labels("delivery").inc()
        if not self.failing:
            log.warning("served log failing: %s", err)
        self.failing, self.last_error = True, str(err)

    def check(self) -> bool:
        """Serve pending delivery reports, then: is the served log failing?"""
        try:
            self.producer.poll(0)
        except Exception as e:  # noqa: BLE001 - a broken producer is a failing log, not a failed request
            self.failing, self.last_error = True, repr(e)
        return self.failing

    async def run(
        self,
        query: ScoredPostsQuery,
        selected: Sequence[PostCandidate],
        non_selected: Sequence[PostCandidate],
    ) -> None:
        key = str(query.viewer_id).encode()
        events = served_events(query, selected)
        for i, ev in enumerate(events):
            try:
                self.producer.produce(
                    self.topic, key=key, value=ev.SerializeToString(), on_delivery=self._on_delivery
                )
            except BufferError:  # local queue full (broker unreachable for long): drop, never block
                SERVED_LOST.labels("queue_full").inc(len(events) - i)
                self.failing, self.last_error = True, "producer queue full"
                break
        self.producer.poll(0)  # serve delivery callbacks; delivery itself is asynchronous
