"""Offline replay of a Kafka topic into Parquet: `foryou replay engagements --since … --out log.parquet`.

Replaying `engagements` yields the engagement log that trains the models; `served` yields the feature
log that joins with it; `posts` and `user-events` yield tables for inspection. Messages that do not
decode are counted and skipped (they already went to the dead-letter topic when first consumed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from confluent_kafka import Consumer, TopicPartition

from foryou.core.kafka import consumer_config
from foryou.core.settings import Settings
from protos import events_pb2 as ev


def _engagement(m: ev.EngagementEvent) -> dict[str, Any]:
    return {
        "user_id": m.user_id,
        "post_id": m.post_id,
        "author_id": m.author_id,
        "action": int(m.action),
        "timestamp_ms": m.timestamp_ms,
        "product_surface": int(m.product_surface),
        "dwell_ms": m.dwell_ms,
    }


def _served(m: ev.ServedEvent) -> dict[str, Any]:
    return {
        "viewer_id": m.viewer_id,
        "post_id": m.post_id,
        "author_id": m.author_id,
        "position": m.position,
        "score": m.score,
        "request_id": m.request_id,
        "model_version": m.model_version,
        "served_at_ms": m.served_at_ms,
        "in_network": m.in_network,
    }


def _post(m: ev.PostEvent) -> dict[str, Any]:
    if m.HasField("delete"):
        d = m.delete
        return {
            "kind": "delete",
            "post_id": d.post_id,
            "author_id": d.author_id,
            "created_at": None,
            "text": None,
            "deleted_at_ms": d.deleted_at_ms,
        }
    p = m.create
    return {
        "kind": "create",
        "post_id": p.post_id,
        "author_id": p.author_id,
        "created_at": p.created_at,
        "text": p.text,
        "deleted_at_ms": None,
    }


def _user_event(m: ev.UserEvent) -> dict[str, Any]:
    return {
        "user_id": m.user_id,
        "type": ev.UserEventType.Name(m.type),
        "target_user_id": m.target_user_id,
        "keyword": m.keyword,
        "timestamp_ms": m.timestamp_ms,
        "screen_name": m.screen_name,
    }


ROW_DECODERS: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], dict[str, Any]]]] = {
    "engagements": (ev.EngagementEvent.FromString, _engagement),
    "served": (ev.ServedEvent.FromString, _served),
    "posts": (ev.PostEvent.FromString, _post),
    "user-events": (ev.UserEvent.FromString, _user_event),
}


@dataclass
class ReplayResult:
    rows: int
    malformed: int
    out: Path


def replay_topic(
    settings: Settings,
    name: str,
    out: Path,
    since_ms: int = 0,
    until_ms: int | None = None,
    idle_timeout_s: float = 2.0,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Read every partition of topic `name` from the start, keep messages with since <= ts < until,
    and write them as Parquet rows. Stops at the high watermarks seen at start."""
    if name not in ROW_DECODERS:
        raise ValueError(f"unknown topic {name!r}; expected one of {sorted(ROW_DECODERS)}")
    decode, to_row = ROW_DECODERS[name]
    topic = settings.topic(name)
    consumer = Consumer(consumer_config(settings, f"replay-{topic}-{time.time_ns()}"))
    md = consumer.list_topics(topic, timeout=10).topics[topic]
    if md.error is not None:
        raise RuntimeError(f"topic {topic}: {md.error}")
    ends: dict[int, int] = {}
    assign = []
    for p in sorted(md.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            ends[p] = high
            assign.append(TopicPartition(topic, p, low))
    consumer.assign(assign)
    rows: list[dict[str, Any]] = []
    malformed = 0
    done: set[int] = set()
    last = time.monotonic()
    while len(done) < len(ends) and time.monotonic() - last < idle_timeout_s:
        msgs = consumer.consume(10_000, 0.5)
        if msgs:
            last = time.monotonic()
        for m in msgs:
            if m.error() is not None:
                continue
            if m.offset() >= ends[m.partition()] - 1:
                done.add(m.partition())
            ts = m.timestamp()[1]
            if ts < since_ms or (until_ms is not None and ts >= until_ms):
                continue
            try:
                rows.append(to_row(decode(m.value())))
            except Exception:  # noqa: BLE001 - malformed records are skipped, not fatal
                malformed += 1
        if progress:
            progress(len(rows))
    consumer.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    df = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    if name == "engagements" and rows:
        df = df.sort("timestamp_ms")
    df.write_parquet(out)
    return ReplayResult(rows=len(rows), malformed=malformed, out=out)
