"""One typed settings object shared by every service: flags > env > defaults.

Env vars are `FORYOU_<FIELD>` (e.g. FORYOU_KAFKA_BOOTSTRAP, FORYOU_REDIS_URL). An unset Kafka
bootstrap / Redis URL means "use the embedded infrastructure from `foryou infra up`": the app
layer (`foryou.app.infra.resolve`) fills them in before a service starts; services only check."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
    partitions: int = 4  # every topic's partition count unless `topic_partitions` names it
    # per-topic overrides, by logical name ("posts", "engagements", "user-events", "served", or a
    # DLQ "posts.dlq"): "posts=12,engagements=24" (docs/SCALING.md). Partitions cap how many
    # ingester processes of one group share a topic.
    topic_partitions: str = ""
    replication_factor: int = 1  # of every topic we create (3 on a production Kafka cluster)
    topic_replication: str = ""  # per-topic overrides, same form: "posts=3,served=2"
    # this process's replica id: full-copy consumers (Thunder's posts consumer, the retrieval
    # index) commit under "<group>-<replica id>", stable across restarts of that replica;
    # "" = the host name (set it when replicas share a host)
    replica_id: str = ""
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
    # gRPC TLS (foryou.core.tls; docs/RELIABILITY.md "Transport security"): PEM file paths. Any of
    # them set turns TLS on for every gRPC server and client of the process (all or nothing).
    tls_cert: str = ""  # server certificate chain
    tls_key: str = ""  # server private key
    tls_ca: str = ""  # CA bundle: clients verify servers with it ("" = system roots), servers clients
    tls_client_auth: bool = False  # servers require a client certificate signed by tls_ca (mTLS)
    tls_client_cert: str = ""  # certificate a client presents (mTLS)
    tls_client_key: str = ""  # its private key

    def topic(self, name: str) -> str:
        """Physical topic name for a logical one ("posts" -> "<prefix>posts")."""
        return f"{self.topic_prefix}{name}"

    def dlq_topic(self, topic: str) -> str:
        return f"{topic}{self.dlq_suffix}"

    def topics(self) -> dict[str, int]:
        """Every topic the system uses with its partition count (DLQs get one partition), after
        the `topic_partitions` overrides."""
        per = _per_topic(self.topic_partitions, "topic_partitions")
        out: dict[str, int] = {}
        for name in (self.posts_topic, self.engagements_topic, self.user_events_topic, self.served_topic):
            t = self.topic(name)
            out[t] = per.get(name, self.partitions)
            out[self.dlq_topic(t)] = per.get(self.dlq_topic(name), 1)
        return out

    def replication(self, topic: str) -> int:
        """Replication factor to create physical topic `topic` with (`topic_replication`, by
        logical name, else `replication_factor`)."""
        per = _per_topic(self.topic_replication, "topic_replication")
        logical = topic.removeprefix(self.topic_prefix)
        return per.get(logical, self.replication_factor)

    def replica(self) -> str:
        """This process's replica id: `replica_id`, else the host name."""
        return self.replica_id or socket.gethostname()

    def replica_group(self, base: str) -> str:
        """The stable consumer group of a full-copy consumer of this replica: one group per
        replica, the same across its restarts (not a new group per start)."""
        return f"{self.topic_prefix}{base}-{self.replica()}"

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


def _per_topic(raw: str, setting: str) -> dict[str, int]:
    """Parse "posts=12,engagements=24" into {"posts": 12, "engagements": 24}."""
    out: dict[str, int] = {}
    for item in filter(None, (x.strip() for x in raw.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"{ENV_PREFIX}{setting.upper()}: expected name=N[,name=N...], got {item!r}")
        out[name.strip()] = int(value)
    return out


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`: for printing and state files (a Redis URL
    carries its AUTH password)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _parse(raw: str, type_name: Any) -> Any:
    t = str(type_name)
    if t == "bool":
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if t == "int":
        return int(raw)
    if t == "float":
        return float(raw)
    return raw
