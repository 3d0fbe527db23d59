"""Publishes one ServedEvent per selected post to the `served` topic (key = viewer id): the feature
log that joins with engagements into training data."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from candidate_pipeline import SideEffect
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery
from protos import events_pb2


def served_events(query: ScoredPostsQuery, selected: Sequence[PostCandidate]) -> list[events_pb2.ServedEvent]:
    now_ms = int(time.time() * 1000)
    return [
        events_pb2.ServedEvent(
            viewer_id=query.viewer_id,
            post_id=c.post_id,
            author_id=c.author_id,
            position=i,
            score=c.score if c.score is not None else 0.0,
            request_id=query.request_id,
            model_version=query.model_version,
            served_at_ms=now_ms,
            in_network=c.in_network is True,
        )
        for i, c in enumerate(selected)
    ]


class ServedImpressionsSideEffect(SideEffect[ScoredPostsQuery, PostCandidate]):
    """`producer` is a confluent_kafka Producer (or anything with produce/poll)."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer, self.topic = producer, topic

    async def run(
        self,
        query: ScoredPostsQuery,
        selected: Sequence[PostCandidate],
        non_selected: Sequence[PostCandidate],
    ) -> None:
        key = str(query.viewer_id).encode()
        for ev in served_events(query, selected):
            self.producer.produce(self.topic, key=key, value=ev.SerializeToString())
        self.producer.poll(0)  # serve delivery callbacks; delivery itself is asynchronous
