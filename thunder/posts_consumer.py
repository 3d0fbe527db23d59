"""Thunder's `posts` consumer: the shared BatchConsumer (batch consume, decode, malformed -> DLQ,
apply, then commit), positioned by explicit assignment at the start of the retention window
instead of joining a consumer group: startup replay begins at once (no group-join wait) and every
start rebuilds the store from the topic, as the reference's fresh-group replay does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from foryou.core.kafka import BatchConsumer, BatchDecoder
from foryou.core.settings import Settings
from protos import events_pb2 as ev
from thunder.replay_start import retention_start_offsets

# librdkafka fetch settings for replay throughput: bigger fetches and a deeper prefetch queue,
# so consume() rarely waits on the broker (posts events are ~60-300 B)
FETCH_OVERRIDES: dict[str, Any] = {
    "fetch.min.bytes": 1_000_000,
    "fetch.wait.max.ms": 20,
    "queued.min.messages": 500_000,
}


class PostsConsumer(BatchConsumer[ev.PostEvent]):
    def __init__(
        self,
        settings: Settings,
        decode_batch: BatchDecoder,
        apply: Callable[[Any], None],
        retention_s: int,
        group_id: str,
        batch_size: int | None = None,
    ) -> None:
        # a group id is still needed: offsets are committed after each applied batch (monitoring,
        # and the position a non-replaying reader would resume from)
        super().__init__(
            settings,
            "thunder",
            [settings.topic(settings.posts_topic)],
            None,
            apply,
            group_id=group_id,
            batch_size=batch_size,
            decode_batch=decode_batch,
            consumer_overrides=FETCH_OVERRIDES,
        )
        self.retention_s = retention_s
        self.group_id = group_id

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def _ensure_assigned(self) -> None:
        if self._assigned:
            return
        self._consumer.assign(retention_start_offsets(self._consumer, self.topics, self.retention_s))
        self._assigned = True
