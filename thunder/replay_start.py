"""Where Thunder's startup replay begins: the first offset of each partition at or after the start
of the retention window (Kafka `offsets_for_times`). Brokers that do not answer it (Tansu returns 0
or errors) fall back to the beginning of the partition; the store's insert rule then drops the
expired posts, so both paths build the same state."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

log = logging.getLogger(__name__)


def retention_start_offsets(
    consumer: Consumer,
    topics: Sequence[str],
    retention_s: int,
    now_ms: int | None = None,
    timeout_s: float = 10.0,
) -> list[TopicPartition]:
    """One TopicPartition per partition of `topics`, positioned at the retention-window start."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    since_ms = now_ms - retention_s * 1000
    md = consumer.list_topics(timeout=timeout_s)
    query: list[TopicPartition] = []
    for t in topics:
        if t not in md.topics:
            raise RuntimeError(f"topic {t} does not exist")
        query += [TopicPartition(t, p, since_ms) for p in sorted(md.topics[t].partitions)]
    try:
        found = consumer.offsets_for_times(query, timeout=timeout_s)
    except KafkaException as e:
        log.info("offsets_for_times unsupported (%s); replaying from the beginning", e)
        return [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in query]
    out = []
    for tp in found:
        if tp.error is not None or tp.offset < -1:
            out.append(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
        elif tp.offset == -1:  # no message at or after the timestamp: only new ones matter
            out.append(TopicPartition(tp.topic, tp.partition, OFFSET_END))
        else:
            out.append(TopicPartition(tp.topic, tp.partition, tp.offset))
    return out
