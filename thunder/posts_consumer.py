"""Thunder's `posts` consumer: the shared BatchConsumer (batch consume, decode, malformed -> DLQ,
apply, then commit), positioned by explicit assignment at the start of the retention window
instead of joining a consumer group: startup replay begins at once (no group-join wait) and every
start rebuilds the store from the topic, as the reference's fresh-group replay does."""

from __future__ import annotations

from collections.abc import Callable

from foryou.kafka import BatchConsumer, Decoded
from foryou.settings import Settings
from protos import events_pb2 as ev
from thunder.replay_start import retention_start_offsets


class PostsConsumer(BatchConsumer[ev.PostEvent]):
    def __init__(
        self,
        settings: Settings,
        decode: Callable[[bytes], ev.PostEvent],
        apply: Callable[[list[Decoded[ev.PostEvent]]], None],
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
            decode,
            apply,
            group_id=group_id,
            batch_size=batch_size,
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
