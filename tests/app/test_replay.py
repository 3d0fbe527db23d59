"""Replay on the real broker: exactly the window, reruns add nothing, interrupted runs resume
without duplicates, end offsets recorded at start, a frozen broker neither ends a replay early nor
hangs one with a timeout, every topic's row schema."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from foryou.app import infra
from foryou.app.replay import (
    SCHEMAS,
    ReplayProgress,
    ReplayTimeout,
    merge_parts,
    read_manifest,
    replay_files,
    replay_topic,
)
from foryou.app.replay.schemas import SERVED, Column, TopicSchema
from foryou.core.kafka import ensure_topics, make_producer
from foryou.core.settings import Settings
from protos import events_pb2 as ev

pytestmark = pytest.mark.integration


def _eng(post_id: int, ts: int) -> bytes:
    return ev.EngagementEvent(
        user_id=post_id % 7 + 1, post_id=post_id, author_id=9, action=ev.SERVER_TWEET_FAV, timestamp_ms=ts
    ).SerializeToString()


def _publish(settings: Settings, topic: str, items: list[tuple[int, int, bytes]]) -> None:
    """(partition, Kafka timestamp, value) in order."""
    producer = make_producer(settings)
    for partition, ts, value in items:
        producer.produce(settings.topic(topic), value=value, partition=partition, timestamp=ts)
    assert producer.flush(10) == 0


def _timestamped(timestamps: range) -> list[tuple[int, int, bytes]]:
    """One message per timestamp in each of 2 partitions; post id = partition * 10,000 + timestamp."""
    return [(p, ts, _eng(p * 10_000 + ts, ts)) for p in (0, 1) for ts in timestamps]


def _each_partition(n: int) -> list[tuple[int, int, bytes]]:
    """n messages in each of 2 partitions; post id = partition * 100 + i."""
    return [(p, 1000 + i, _eng(p * 100 + i, 1000 + i)) for p in (0, 1) for i in range(n)]


def _post_ids(files: list[Path]) -> list[int]:
    return sorted(pl.read_parquet(files)["post_id"].to_list()) if files else []


def test_replay_returns_exactly_the_window_and_a_rerun_adds_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    items = _timestamped(range(1000, 1010))
    items.insert(15, (1, 1004, b"\xffgarbage"))  # malformed, inside the window, in partition 1
    _publish(settings, "engagements", items)
    out = tmp_path / "eng"
    res = replay_topic(settings, "engagements", 1003, 1007, out, part_rows=3)
    want = [p * 10_000 + ts for p in (0, 1) for ts in range(1003, 1007)]
    assert _post_ids(res.files) == want
    assert (res.rows, res.malformed, res.messages) == (8, 1, 9)
    assert res.window_end == {0: True, 1: True}  # stopped at the first message at `until`
    assert {p: nxt for p, (_, nxt) in res.offsets.items()} == {0: 7, 1: 8}  # the 1007s stay unread
    assert [f.name for f in res.files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pl.read_parquet(f).height for f in res.files] == [3, 3, 2]  # part_rows each, the last shorter
    df = pl.read_parquet(res.files)
    assert df.schema == SCHEMAS["engagements"].schema
    assert (df["action"] == ev.SERVER_TWEET_FAV).all()
    assert (df["timestamp_ms"] == df["post_id"] % 10_000).all()

    again = replay_topic(settings, "engagements", 1003, 1007, out, part_rows=3)
    assert again.added_rows == 0 and again.files == res.files and _post_ids(again.files) == want
    assert replay_files(out) == res.files
    assert merge_parts(out, tmp_path / "log.parquet") == 8  # one file for `train ranker --logs`
    assert pl.read_parquet(tmp_path / "log.parquet").equals(df)
    with pytest.raises(ValueError, match="use another directory"):
        replay_topic(settings, "engagements", 1003, 1008, out)


def test_interrupted_replay_resumes_without_duplicates(settings: Settings, tmp_path: Path) -> None:
    _publish(settings, "engagements", _each_partition(10))
    out = tmp_path / "eng"

    class Interrupt(Exception):
        pass

    def stop_after_two_parts(pr: ReplayProgress) -> None:
        if pr.parts >= 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        replay_topic(
            settings, "engagements", 0, None, out, part_rows=2, batch_size=3, progress=stop_after_two_parts
        )
    m = read_manifest(out)
    assert m is not None and not m.complete and len(m.parts) >= 2
    done = sum(f.rows for f in m.parts)
    with pytest.raises(ValueError, match="interrupted"):
        replay_files(out)
    # what a crash between a part and its manifest update leaves behind
    (out / f"part-{len(m.parts):05d}.parquet").write_bytes(b"half a part")
    (out / "manifest.json.tmp").write_bytes(b"{")

    res = replay_topic(settings, "engagements", 0, None, out, part_rows=2, batch_size=3)
    assert _post_ids(res.files) == [p * 100 + i for p in (0, 1) for i in range(10)]  # each once
    assert res.added_rows == 20 - done and res.rows == 20
    left = sorted(f.name for f in out.iterdir() if f.name != ".lock")
    assert left == sorted([*(f.name for f in res.files), "manifest.json"])


def test_end_offsets_are_recorded_at_start_and_a_rerun_reads_only_what_came_after(
    settings: Settings, tmp_path: Path
) -> None:
    """`until` later than anything published: the run stops at the end offsets it recorded when it
    started; a rerun adds what arrived since, up to the window's end, and nothing twice."""
    _publish(settings, "engagements", _timestamped(range(1000, 1005)))
    out = tmp_path / "eng"
    first = replay_topic(settings, "engagements", 1000, 2000, out)
    assert first.rows == 10 and first.window_end == {0: False, 1: False}
    late = [
        (0, 1005, _eng(1005, 1005)),
        (0, 2000, _eng(2000, 2000)),  # the window's end in partition 0
        (0, 1006, _eng(1006, 1006)),  # after the end: never read
        (1, 1005, _eng(11005, 1005)),
    ]
    _publish(settings, "engagements", late)
    second = replay_topic(settings, "engagements", 1000, 2000, out)
    assert second.added_rows == 2 and second.window_end == {0: True, 1: False}
    assert _post_ids(second.files) == sorted([*_post_ids(first.files), 1005, 11005])
    _publish(settings, "engagements", [(0, 1007, _eng(1007, 1007)), (1, 1006, _eng(11006, 1006))])
    third = replay_topic(settings, "engagements", 1000, 2000, out)
    assert third.added_rows == 1 and _post_ids(third.files)[-1] == 11006  # partition 0 has ended


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[Settings, int]]:
    """A broker of this test's own, to freeze (SIGSTOP) without touching the session's."""
    proc, bootstrap = infra.start_broker(tmp_path)
    prefix = f"{uuid.uuid4().hex[:8]}."
    s = Settings(kafka_bootstrap=bootstrap, redis_url="redis://unused", topic_prefix=prefix, partitions=2)
    ensure_topics(s, s.topics())
    try:
        yield s, proc.pid
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


def test_frozen_broker_neither_ends_a_replay_early_nor_hangs_one_with_a_timeout(
    own_broker: tuple[Settings, int], tmp_path: Path
) -> None:
    settings, pid = own_broker
    _publish(settings, "engagements", _each_partition(5))
    reports: list[ReplayProgress] = []
    resumed = threading.Event()

    def thaw() -> None:
        os.kill(pid, signal.SIGCONT)
        resumed.set()

    def freeze_for_3s(pr: ReplayProgress) -> None:
        if not reports:  # end offsets recorded, nothing fetched yet: the broker goes quiet
            os.kill(pid, signal.SIGSTOP)
            threading.Timer(3.0, thaw).start()
        reports.append(pr)

    res = replay_topic(settings, "engagements", 0, None, tmp_path / "slow", progress=freeze_for_3s)
    # it waited for the broker to come back (the old 2 s idle timeout would have ended it empty)
    assert res.rows == 10 and resumed.is_set()
    assert sum(r.messages == 0 for r in reports) >= 4  # polled on through the silence

    frozen: list[bool] = []

    def freeze(pr: ReplayProgress) -> None:
        if not frozen:
            os.kill(pid, signal.SIGSTOP)
            frozen.append(True)

    t0 = time.monotonic()
    with pytest.raises(ReplayTimeout, match=r"partitions to reach their end offsets: 0 at 0/5, 1 at 0/5"):
        replay_topic(settings, "engagements", 0, None, tmp_path / "stuck", progress=freeze, timeout_s=1.5)
    assert time.monotonic() - t0 < 60  # the 1.5 s timeout ended it: no hang
    os.kill(pid, signal.SIGCONT)
    m = read_manifest(tmp_path / "stuck")
    assert m is not None and not m.complete  # a rerun would continue from here


def test_every_topic_keeps_its_row_schema(settings: Settings, tmp_path: Path) -> None:
    post = ev.PostEvent(create=ev.Post(post_id=5, author_id=6, created_at=7, text="hi"))
    delete = ev.PostEvent(delete=ev.PostDelete(post_id=5, author_id=6, deleted_at_ms=8))
    follow = ev.UserEvent(user_id=1, type=ev.USER_EVENT_FOLLOW, target_user_id=2, timestamp_ms=3)
    served = ev.ServedEvent(
        viewer_id=1, post_id=5, author_id=6, position=2, score=0.5, request_id="r", model_version="v",
        served_at_ms=9, in_network=True, source="PhoenixSource", retrieval_model_version="rv",
        action_probs=[0.25, 0.5, 0.125], predicted_dwell_s=2.5, weighted_score=0.75,
        experiment_bucket="b", product_surface=ev.PRODUCT_SURFACE_HOME_TIMELINE,
    )  # fmt: skip
    unscored = ev.ServedEvent(viewer_id=1, post_id=7, served_at_ms=10)  # recency fallback: no predictions
    _publish(settings, "posts", [(0, 1, post.SerializeToString()), (0, 2, delete.SerializeToString())])
    _publish(settings, "user-events", [(1, 1, follow.SerializeToString())])
    _publish(settings, "served", [(0, 1, served.SerializeToString()), (0, 2, unscored.SerializeToString())])
    got = {}
    for topic in ("posts", "user-events", "served"):
        res = replay_topic(settings, topic, 0, None, tmp_path / topic)
        df = pl.read_parquet(res.files)
        assert df.schema == SCHEMAS[topic].schema
        got[topic] = df.rows()
    assert got["posts"] == [("create", 5, 6, 7, "hi", None), ("delete", 5, 6, None, None, 8)]
    assert got["user-events"] == [(1, "USER_EVENT_FOLLOW", 2, "", 3, "")]
    assert got["served"] == [
        (1, 5, 6, 2, 0.5, "r", "v", 9, True, "PhoenixSource", "rv", [0.25, 0.5, 0.125], 2.5, 0.75, "b", 1),
        (1, 7, 0, 0, 0.0, "", "", 10, False, "", "", None, None, 0.0, "", 0),  # unscored: nulls
    ]


def test_a_new_served_field_is_one_column() -> None:
    m = ev.ServedEvent(viewer_id=1, post_id=2, served_at_ms=3)
    doubled = Column("doubled", pl.Int64, lambda m: m.post_id * 2)
    extended = TopicSchema(SERVED.decode, (*SERVED.columns, doubled))
    assert extended.row_getter()(m)[-1] == 4 and extended.schema["doubled"] == pl.Int64
    assert SERVED.row_getter()(m)[:9] == (1, 2, 0, 0, 0.0, "", "", 3, False)


def test_unknown_topic_and_a_busy_directory_are_refused(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown topic"):
        replay_topic(settings, "clicks", 0, None, tmp_path)
    out = tmp_path / "eng"
    out.mkdir()
    with open(out / ".lock", "w") as held:  # another replay writing there
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RuntimeError, match="another replay"):
            replay_topic(settings, "engagements", 0, None, out)
    assert replay_topic(settings, "engagements", 0, None, out).rows == 0  # released: it runs
    assert merge_parts(out, tmp_path / "empty.parquet") == 0  # an empty window keeps its columns
    assert pl.read_parquet_schema(tmp_path / "empty.parquet") == SCHEMAS["engagements"].schema
