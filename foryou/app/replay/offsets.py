"""Where a replay starts and ends in each partition.

Start: the first offset whose timestamp is >= `since` (Kafka `offsets_for_times`); a broker that
ignores the timestamp (the embedded Tansu answers 0) makes the replay read from the beginning and
drop the older messages itself - the same rows, read more slowly.

End: the high watermark when the run starts. It is taken from a fetch response, not from
ListOffsets alone: Tansu's ListOffsets(latest) answers the base offset of the last record batch + 1,
which would cut off the rest of that batch, while its fetch responses carry the true watermark."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from foryou.app.replay.deadline import Deadline

log = logging.getLogger(__name__)
META_TIMEOUT_S = 10.0


def partition_ids(consumer: Consumer, topic: str, deadline: Deadline) -> list[int]:
    while True:
        try:
            md = consumer.list_topics(topic, timeout=META_TIMEOUT_S).topics.get(topic)
        except KafkaException as e:  # broker slow or down: keep asking until the deadline
            log.warning("replay: metadata of %s unavailable (%s); retrying", topic, e)
            deadline.check(f"metadata of {topic}")
            continue
        if md is None or md.error is not None:
            raise RuntimeError(f"topic {topic}: {md.error if md else 'does not exist'}")
        return sorted(md.partitions)


def watermarks(
    consumer: Consumer, topic: str, partitions: list[int], deadline: Deadline
) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for p in partitions:
        while p not in out:
            try:
                out[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=META_TIMEOUT_S)
            except KafkaException as e:
                log.warning("replay: watermarks of %s[%d] unavailable (%s); retrying", topic, p, e)
                deadline.check(f"the watermarks of {topic}[{p}]")
    return out


def end_offsets(
    conf: dict[str, Any], topic: str, marks: dict[int, tuple[int, int]], deadline: Deadline
) -> dict[int, int]:
    """The true high watermark of each partition: fetch from the listed end - 1 (one batch) with a
    throw-away consumer and read the watermark its fetch response cached."""
    ends = {p: hi for p, (_, hi) in marks.items()}
    pending = {p for p, (lo, hi) in marks.items() if hi > lo}
    if not pending:
        return ends
    probe = Consumer(conf)
    try:
        probe.assign([TopicPartition(topic, p, ends[p] - 1) for p in sorted(pending)])
        while pending:
            probe.consume(1_000, 0.05)
            for p in sorted(pending):
                _, hi = probe.get_watermark_offsets(TopicPartition(topic, p), cached=True)
                if hi >= 0:  # a fetch response has arrived for it
                    ends[p] = max(ends[p], hi)
                    pending.discard(p)
            if pending:
                deadline.check(f"the end offsets of {topic} partitions {sorted(pending)}")
    finally:
        probe.close()
    return ends


def start_offsets(
    consumer: Consumer,
    topic: str,
    since_ms: int,
    marks: dict[int, tuple[int, int]],
    ends: dict[int, int],
) -> dict[int, int]:
    """First offset at or after `since` in each partition; the low watermark where the broker cannot
    tell, the end offset where no message is that recent."""
    lows = {p: lo for p, (lo, _) in marks.items()}
    if since_ms <= 0:
        return lows
    query = [TopicPartition(topic, p, since_ms) for p in sorted(marks)]
    try:
        found = consumer.offsets_for_times(query, timeout=META_TIMEOUT_S)
    except KafkaException as e:
        log.info("replay: offsets_for_times unsupported (%s); reading %s from the beginning", e, topic)
        return lows
    out = {}
    for tp in found:
        p = tp.partition
        if tp.error is not None or tp.offset < -1:
            out[p] = lows[p]
        elif tp.offset == -1:  # nothing at or after `since` yet
            out[p] = ends[p]
        else:
            out[p] = min(max(tp.offset, lows[p]), ends[p])
    return out
