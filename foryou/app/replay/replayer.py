"""`replay_topic`: one topic's messages in a time window, streamed from Kafka into Parquet part
files, resumable through the manifest (rules in docs/OPERATIONS.md, "Replay and the training
dataset")."""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from foryou.app.replay.deadline import Deadline, ReplayTimeout
from foryou.app.replay.manifest import Manifest, PartitionState, read_manifest, write_manifest
from foryou.app.replay.offsets import end_offsets, partition_ids, start_offsets, watermarks
from foryou.app.replay.parts import remove_orphans, write_part
from foryou.app.replay.schemas import SCHEMAS, TopicSchema
from foryou.core.kafka import RDKAFKA_LOG, consumer_config
from foryou.core.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PART_ROWS = 250_000  # ~60 MB of row tuples in the buffer; parts of a few MB (zstd)
POLL_S = 0.1  # consume() waits this long for a full batch: the delay to notice the end
LOCK = ".lock"


@dataclass(frozen=True)
class ReplayProgress:
    """Where a running replay is; `total` bounds `messages` (the offsets left to read when the run
    started: the window's end may be reached earlier)."""

    messages: int  # messages read by this run, in the window or not
    bytes: int  # their value bytes
    rows: int  # rows kept by this run (written or buffered)
    malformed: int
    total: int
    parts: int  # part files in the output (all runs)
    elapsed_s: float


@dataclass
class ReplaySummary:
    """The whole output (every run on this directory), and what this run added."""

    topic: str
    kafka_topic: str
    since_ms: int
    until_ms: int | None
    out_dir: Path
    messages: int  # messages read inside the window: rows + malformed
    rows: int
    malformed: int
    outside: int  # read but before the window (skipped)
    bytes: int
    partitions: dict[int, PartitionState]  # the manifest's, in partition order
    files: list[Path]
    added_rows: int  # by this run
    seconds: float  # this run

    @property
    def offsets(self) -> dict[int, tuple[int, int]]:
        """partition -> [start, next): the offsets read."""
        return {p: (st.start, st.next) for p, st in self.partitions.items()}

    @property
    def window_end(self) -> dict[int, bool]:
        """partition -> a message at or after `until` was seen."""
        return {p: st.window_end for p, st in self.partitions.items()}


def kafka_topic_of(settings: Settings, topic: str) -> str:
    names = {
        "posts": settings.posts_topic,
        "engagements": settings.engagements_topic,
        "user-events": settings.user_events_topic,
        "served": settings.served_topic,
    }
    if topic not in SCHEMAS or topic not in names:
        raise ValueError(f"unknown topic {topic!r}; expected one of {sorted(SCHEMAS)}")
    return settings.topic(names[topic])


@contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """One replay per directory at a time: two would interleave parts and manifests."""
    with open(out_dir / LOCK, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{out_dir}: another replay is writing there") from None
        yield  # closing the file releases the lock


def _open_manifest(
    out_dir: Path, topic: str, kafka_topic: str, since_ms: int, until_ms: int | None
) -> Manifest:
    m = read_manifest(out_dir)
    remove_orphans(out_dir, {f.file for f in m.parts} if m else set(), m is not None)
    if m is None:
        return Manifest(topic, kafka_topic, since_ms, until_ms)
    if not m.same_window(topic, kafka_topic, since_ms, until_ms):
        raise ValueError(
            f"{out_dir} holds a replay of {m.kafka_topic} [{m.since_ms}, {m.until_ms}); "
            f"use another directory for {kafka_topic} [{since_ms}, {until_ms})"
        )
    return m


class _Run:
    """One run's state: the consumer, the row buffer and the manifest it keeps in step."""

    def __init__(
        self,
        consumer: Consumer,
        manifest: Manifest,
        out_dir: Path,
        schema: TopicSchema,
        part_rows: int,
    ) -> None:
        self.consumer, self.m, self.out_dir = consumer, manifest, out_dir
        self.arrow_schema = schema.schema
        self.decode, self.row = schema.decode, schema.row_getter()
        self.part_rows = part_rows
        self.buf: list[tuple[Any, ...]] = []
        self.messages = self.bytes = self.rows = self.malformed = 0

    def flush(self) -> None:
        """Write the buffered rows as the next part, then the manifest that covers them; only then
        do the partitions' `next` offsets on disk move past these messages."""
        if self.buf:
            self.m.parts.append(write_part(self.out_dir, len(self.m.parts), self.buf, self.arrow_schema))
            self.buf = []
        write_manifest(self.out_dir, self.m)

    def take(self, msgs: list[Message]) -> None:
        """Account for one consumed batch. Column-wise (C-level maps, numpy masks) rather than a
        Python step per message: the replay's hot loop."""
        errors = list(map(Message.error, msgs))
        if errors.count(None) != len(msgs):
            msgs = self._drop_errors(msgs, errors)
        if not msgs:
            return
        n = len(msgs)
        parts = np.fromiter(map(Message.partition, msgs), np.int64, n)
        offs = np.fromiter(map(Message.offset, msgs), np.int64, n)
        tss = np.fromiter((t for _, t in map(Message.timestamp, msgs)), np.int64, n)
        if (parts == parts[0]).all():
            self._take_partition(int(parts[0]), msgs, offs, tss)
            return
        for p in np.unique(parts).tolist():
            idx = np.flatnonzero(parts == p)
            self._take_partition(p, [msgs[i] for i in idx.tolist()], offs[idx], tss[idx])

    def _drop_errors(self, msgs: list[Message], errors: list[Any]) -> list[Message]:
        for err in errors:
            if err is None:
                continue
            if err.fatal():
                raise KafkaException(err)
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("replay %s: %s", self.m.kafka_topic, err)
        return [m for m, err in zip(msgs, errors, strict=True) if err is None]

    def _decode(
        self, values: list[bytes | None], inwin: np.ndarray
    ) -> tuple[list[tuple[Any, ...]], np.ndarray]:
        """(rows of the in-window values that decode, mask of those values)."""
        good = inwin.copy()
        picked = [values[k] for k in np.flatnonzero(inwin).tolist()]
        decode, row = self.decode, self.row
        try:
            return [row(decode(v)) for v in picked], good  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - some value is malformed: find which, one by one
            pass
        rows = []
        for k in np.flatnonzero(inwin).tolist():
            try:
                rows.append(row(decode(values[k])))  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - malformed: already dead-lettered when first consumed
                good[k] = False
        return rows, good

    def _take_partition(self, p: int, msgs: list[Message], offs: np.ndarray, tss: np.ndarray) -> None:
        """Messages of partition `p` in offset order: cut at the end offset or the window's end,
        then move rows into the buffer, writing a part (and the manifest) each `part_rows` rows."""
        st = self.m.partitions[p]
        if st.done:
            return  # prefetched before it was paused
        first = int(np.searchsorted(offs, st.next))  # below `next`: delivered twice
        stop = int(np.searchsorted(offs, st.end))  # at or past the end: a later run's
        reached_end, window_off = stop < len(offs), None
        if self.m.until_ms is not None:
            late = np.flatnonzero(tss[first:stop] >= self.m.until_ms)
            if len(late):  # the window's end: this message and later ones stay unread, in every run
                stop, reached_end = first + int(late[0]), False
                window_off = int(offs[stop])
        offs, tss, msgs = offs[first:stop], tss[first:stop], msgs[first:stop]
        if len(msgs):
            values = list(map(Message.value, msgs))
            lens = np.fromiter((len(v) if v else 0 for v in values), np.int64, len(values))
            inwin = tss >= self.m.since_ms
            rows, good = self._decode(values, inwin)
            cum = np.cumsum(good)
            a = r = 0  # next message, next row
            while a < len(msgs):
                room = self.part_rows - len(self.buf)
                b = len(msgs) if cum[-1] - r < room else int(np.searchsorted(cum, r + room)) + 1
                self.buf.extend(rows[r : int(cum[b - 1])])
                r = int(cum[b - 1])
                self._count(st, int(offs[b - 1]) + 1, lens[a:b], inwin[a:b], good[a:b])
                a = b
                if len(self.buf) >= self.part_rows:
                    self.flush()
        # only now that every row before them is buffered: a part written above must not claim them
        if window_off is not None:
            st.window_end, st.next = True, window_off
        if reached_end:
            st.next = st.end  # any offsets below it without a message were compacted away
        if st.done:
            self.consumer.pause([TopicPartition(self.m.kafka_topic, p)])  # stop fetching past its end

    def _count(
        self, st: PartitionState, next_off: int, lens: np.ndarray, inwin: np.ndarray, good: np.ndarray
    ) -> None:
        n, nbytes, kept, in_window = len(lens), int(lens.sum()), int(good.sum()), int(inwin.sum())
        bad = in_window - kept
        st.next = next_off
        st.bytes += nbytes
        st.outside += n - in_window
        st.malformed += bad
        st.rows += kept
        self.messages += n
        self.bytes += nbytes
        self.malformed += bad
        self.rows += kept

    def settle_idle(self) -> None:
        """Nothing arrived: a partition whose position already passed its end (offsets with no
        message to deliver: transaction markers, compaction) is done."""
        topic = self.m.kafka_topic
        pending = [TopicPartition(topic, p) for p, st in self.m.partitions.items() if not st.done]
        if not pending:
            return
        for tp in self.consumer.position(pending):
            st = self.m.partitions[tp.partition]
            if tp.offset >= st.end:
                st.next = st.end

    def pending(self) -> dict[int, PartitionState]:
        return {p: st for p, st in self.m.partitions.items() if not st.done}

    def read_to_end(
        self,
        deadline: Deadline,
        batch_size: int,
        progress: Callable[[ReplayProgress], None] | None,
        t0: float,
    ) -> None:
        """Poll until every partition is done (never because nothing arrives), then write the last
        part and mark the manifest complete."""
        pending = self.pending()
        total = sum(st.end - st.next for st in pending.values())

        def report() -> None:
            if progress is not None:
                dt = time.monotonic() - t0
                parts = len(self.m.parts)
                progress(
                    ReplayProgress(self.messages, self.bytes, self.rows, self.malformed, total, parts, dt)
                )

        report()
        topic = self.m.kafka_topic
        if pending:
            self.consumer.assign([TopicPartition(topic, p, st.next) for p, st in sorted(pending.items())])
        try:
            while pending:
                msgs = self.consumer.consume(batch_size, POLL_S)
                if msgs:
                    self.take(msgs)
                else:
                    self.settle_idle()
                report()
                pending = self.pending()
                if pending:
                    deadline.check(
                        "partitions to reach their end offsets: "
                        + ", ".join(f"{p} at {st.next}/{st.end}" for p, st in sorted(pending.items()))
                    )
        except ReplayTimeout:
            self.flush()  # between two polls the state is consistent: keep what was read
            raise
        self.m.complete = True
        self.flush()
        report()


def _prepare(consumer: Consumer, m: Manifest, conf: dict[str, Any], deadline: Deadline) -> None:
    """Record this run's end offsets (never lower than a previous run's) and give new partitions
    their start offsets."""
    topic = m.kafka_topic
    marks = watermarks(consumer, topic, partition_ids(consumer, topic, deadline), deadline)
    probe_conf = {**conf, "queued.min.messages": 1}
    ends = end_offsets(probe_conf, topic, marks, deadline)
    new = {p: marks[p] for p in marks if p not in m.partitions}
    starts = start_offsets(consumer, topic, m.since_ms, new, ends) if new else {}
    for p, end in ends.items():
        st = m.partitions.get(p)
        if st is None:
            m.partitions[p] = PartitionState(start=starts[p], next=starts[p], end=end)
        elif not st.window_end:
            st.end = max(st.end, end)


def replay_topic(
    settings: Settings,
    topic: str,
    since_ms: int,
    until_ms: int | None,
    out_dir: str | Path,
    *,
    part_rows: int = DEFAULT_PART_ROWS,
    progress: Callable[[ReplayProgress], None] | None = None,
    timeout_s: float | None = None,
    batch_size: int = 10_000,
) -> ReplaySummary:
    """Replay `topic` (posts | engagements | user-events | served) messages with Kafka timestamp in
    [since_ms, until_ms) into `out_dir` as Parquet parts plus `manifest.json`.

    Each partition is read from its first offset at or after `since_ms` until the end offset
    recorded when this run started, or until its first message with timestamp >= `until_ms`; a
    quiet broker never ends it. Rerunning on the same directory with the same window resumes an
    interrupted run and adds only messages not read before. `timeout_s` (None: no limit) raises
    `ReplayTimeout` instead of returning a short result. `progress` gets a `ReplayProgress` at
    the start and after every poll."""
    t0 = time.monotonic()
    kafka_topic = kafka_topic_of(settings, topic)
    if part_rows < 1:
        raise ValueError("part_rows must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    deadline = Deadline(timeout_s)
    with _exclusive(out):
        m = _open_manifest(out, topic, kafka_topic, since_ms, until_ms)
        # no group is joined (partitions are assigned) and nothing is committed: the manifest is
        # the replay's only position
        conf = consumer_config(settings, f"replay-{kafka_topic}")
        consumer = Consumer(conf, logger=RDKAFKA_LOG)
        try:
            _prepare(consumer, m, conf, deadline)
            m.complete = False
            write_manifest(out, m)  # this run's end offsets, before anything is read
            run = _Run(consumer, m, out, SCHEMAS[topic], part_rows)
            run.read_to_end(deadline, batch_size, progress, t0)
        finally:
            consumer.close()
    return _summary(m, out, run.rows, time.monotonic() - t0)


def _summary(m: Manifest, out: Path, added: int, seconds: float) -> ReplaySummary:
    parts = m.partitions.values()
    rows = sum(st.rows for st in parts)
    malformed = sum(st.malformed for st in parts)
    return ReplaySummary(
        topic=m.topic,
        kafka_topic=m.kafka_topic,
        since_ms=m.since_ms,
        until_ms=m.until_ms,
        out_dir=out,
        messages=rows + malformed,
        rows=rows,
        malformed=malformed,
        outside=sum(st.outside for st in parts),
        bytes=sum(st.bytes for st in parts),
        partitions=dict(sorted(m.partitions.items())),
        files=[out / f.file for f in m.parts],
        added_rows=added,
        seconds=seconds,
    )
