"""Base of the Redis ingesters: a decode function (validation errors -> dead-letter topic), an
apply function writing one batch to Redis, and the BatchConsumer that drives them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import redis

from foryou.core.kafka import BatchConsumer, DeadLetterQueue, Decoded
from foryou.core.settings import Settings
from foryou.core.user_state import DEFAULT_SEQ_CAP

T = TypeVar("T")


@dataclass(slots=True)
class IngestConfig:
    group_prefix: str = "foryou-ingest"  # consumer group = <topic_prefix><group_prefix>-<ingester name>
    replay_from_beginning: bool = False  # assign every partition from offset 0, no commits
    seq_cap: int = DEFAULT_SEQ_CAP
    batch_size: int | None = None  # None -> settings.consumer_batch_size


class RedisIngester(Generic[T]):
    """Subclasses set `name` and `logical_topic` and implement `decode` and `apply`."""

    name: ClassVar[str]
    logical_topic: ClassVar[str]  # attribute of Settings holding the topic's logical name
    # key patterns (after the prefix) of an ingester whose writes are not idempotent (counters): a
    # state rebuild deletes them before replaying the topic, or replayed events would count twice
    rebuild_clears: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: Settings, client: redis.Redis, config: IngestConfig | None = None) -> None:
        self.settings = settings
        self.redis = client
        self.config = config or IngestConfig()
        self.prefix = settings.redis_prefix

    @property
    def topic(self) -> str:
        return self.settings.topic(getattr(self.settings, self.logical_topic))

    @property
    def group_id(self) -> str:
        return f"{self.settings.topic_prefix}{self.config.group_prefix}-{self.name}"

    def decode(self, raw: bytes) -> T:
        raise NotImplementedError

    def apply(self, batch: Sequence[Decoded[T]]) -> None:
        raise NotImplementedError

    def make_consumer(
        self, *, name: str | None = None, dlq: DeadLetterQueue | None = None, **overrides: Any
    ) -> BatchConsumer[T]:
        """`name` (default: the ingester's) labels the consumer's metrics: a second consumer of the
        same ingester (a state rebuild) needs its own. `overrides`: librdkafka properties."""
        return BatchConsumer(
            self.settings,
            name or self.name,
            [self.topic],
            self.decode,
            self.apply,
            group_id=None if self.config.replay_from_beginning else self.group_id,
            replay_from_beginning=self.config.replay_from_beginning,
            batch_size=self.config.batch_size,
            dlq=dlq,
            consumer_overrides=overrides or None,
        )
