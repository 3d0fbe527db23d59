"""One typed settings object shared by every service: flags > env > defaults.

Env vars are `FORYOU_<FIELD>` (e.g. FORYOU_KAFKA_BOOTSTRAP, FORYOU_REDIS_URL). An unset Kafka
bootstrap / Redis URL means "use the embedded infrastructure from `foryou infra up`": the app
layer (`foryou.app.infra.resolve`) fills them in before a service starts; services only check."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "FORYOU_"
NO_INFRA = (
    "no Kafka/Redis configured: set FORYOU_KAFKA_BOOTSTRAP and FORYOU_REDIS_URL, "
    "or run `foryou infra up` first"
)


def _default_data_dir() -> str:
    return str(Path.cwd() / ".foryou")


@dataclass(slots=True)
class Settings:
    kafka_bootstrap: str = ""  # "" -> embedded broker from the infra state file
    redis_url: str = ""  # "" -> embedded redis from the infra state file
    data_dir: str = field(default_factory=_default_data_dir)
    redis_prefix: str = "fy:"
    topic_prefix: str = ""  # prepended to every topic name (tests isolate themselves with it)
    posts_topic: str = "posts"
    engagements_topic: str = "engagements"
    user_events_topic: str = "user-events"
    served_topic: str = "served"
    dlq_suffix: str = ".dlq"
    partitions: int = 4
    kafka_session_timeout_ms: int = 6000  # Tansu joins a group in ~session.timeout/2
    consumer_batch_size: int = 5000
    consumer_poll_timeout_s: float = 0.2
    log_level: str = "INFO"
    log_json: bool = True
    metrics_port: int = 0  # 0 -> no /metrics HTTP server
    admin_token: str = ""  # bearer token for ReloadModel
    # extra librdkafka properties merged into every Kafka client (producer, consumer, admin), e.g.
    # security.protocol / sasl.* / ssl.*: a JSON object, `key=value,key=value`, or `@/path/file`
    # (a Java-style properties file); see foryou.core.kafka.kafka_properties and docs/RELIABILITY.md
    kafka_config: str = ""
    consumer_max_message_bytes: int = 1_000_000  # bigger messages are dead-lettered, never decoded
    dlq_max_message_bytes: int = 1_000_000  # the dead-letter producer's message.max.bytes
    dlq_truncate_bytes: int = 65_536  # a message too big for the DLQ goes as its first N bytes
    dlq_timeout_s: float = 10.0  # a dead letter not acknowledged in this time fails the batch
    consumer_health_interval_s: float = 2.0  # how often a consumer checks broker, topics, positions
    consumer_stall_s: float = 30.0  # default threshold of BatchConsumer.is_stalled()
    kafka_recreate_topics: bool = True  # a consumer re-creates its topics when they disappear

    def topic(self, name: str) -> str:
        """Physical topic name for a logical one ("posts" -> "<prefix>posts")."""
        return f"{self.topic_prefix}{name}"

    def dlq_topic(self, topic: str) -> str:
        return f"{topic}{self.dlq_suffix}"

    def topics(self) -> dict[str, int]:
        """Every topic the system uses with its partition count (DLQs get one partition)."""
        out: dict[str, int] = {}
        for name in (self.posts_topic, self.engagements_topic, self.user_events_topic, self.served_topic):
            t = self.topic(name)
            out[t] = self.partitions
            out[self.dlq_topic(t)] = 1
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then FORYOU_* env vars, then explicit overrides (flags); None overrides are ignored."""
        source: Mapping[str, str] = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = ENV_PREFIX + f.name.upper()
            raw = source.get(var)
            if raw is not None:
                try:
                    values[f.name] = _parse(raw, f.type)
                except ValueError:
                    raise ValueError(f"{var}={raw!r}: expected {_FORMS.get(str(f.type), f.type)}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def require_infra(self) -> Settings:
        """Self, when both Kafka and Redis are configured; a clear error otherwise. (The app layer
        fills them from the embedded launcher's record before handing settings to a service.)"""
        if self.kafka_bootstrap and self.redis_url:
            return self
        raise RuntimeError(NO_INFRA)


_FORMS = {"int": "an integer", "float": "a number", "bool": "true/false"}


def _parse(raw: str, type_name: Any) -> Any:
    t = str(type_name)
    if t == "bool":
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if t == "int":
        return int(raw)
    if t == "float":
        return float(raw)
    return raw
