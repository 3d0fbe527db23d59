"""The served x engagements join on a hand-built case: positives, negatives, the attribution
window's edges, engagements before the impression, repeated impressions, duplicates, censoring;
every row carries its impression's served record (model versions, experiment bucket, ...)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from foryou.app import dataset
from foryou.app.dataset import DATASET_SCHEMA, LOG_COLUMNS, PROVENANCE, build_dataset
from foryou.app.replay import replay_topic
from foryou.app.replay.schemas import ENGAGEMENTS, SERVED
from foryou.core.kafka import make_producer
from foryou.core.settings import Settings
from protos import events_pb2 as ev

W = 1_000  # attribution window of these tests (ms)
A = ev.ActionName
IMP, FAV, REPLY, RT, CLICK, DWELL = (
    A.IMPRESSION,
    A.SERVER_TWEET_FAV,
    A.SERVER_TWEET_REPLY,
    A.SERVER_TWEET_RETWEET,
    A.CLIENT_TWEET_CLICK,
    A.CLIENT_TWEET_RECAP_DWELLED,
)
HOME, PROFILE = ev.PRODUCT_SURFACE_HOME_TIMELINE, ev.PRODUCT_SURFACE_PROFILE
AUTHOR = 7

# (viewer, post, served_at_ms)
SERVED_ROWS = [
    (1, 10, 1000),
    (1, 11, 1000),
    (1, 11, 5000),  # served again: later engagements belong to this one
    (1, 12, 3000),
    (1, 12, 3000),  # the same serving logged twice: one impression
    (2, 10, 1000),
]
# (user, post, action, timestamp_ms, surface, dwell_ms)
ENGAGEMENT_ROWS = [
    (1, 10, FAV, 1000, HOME, 0),  # at the impression: attributed
    (1, 10, REPLY, 2000, HOME, 0),  # exactly at the window's end: attributed
    (1, 10, RT, 2001, HOME, 0),  # 1 ms after the window: not attributed
    (1, 10, CLICK, 999, HOME, 0),  # before the impression: not attributed
    (1, 11, FAV, 1500, PROFILE, 0),  # first impression of 11 (surface kept)
    (1, 11, FAV, 5200, HOME, 0),  # latest impression before it: the second one
    (1, 11, FAV, 5500, HOME, 0),  # the same action again on that impression: dropped
    (1, 11, DWELL, 5300, HOME, 700),
    (1, 11, DWELL, 5300, HOME, 900),  # duplicate at the same time: the longest dwell stays
    (1, 12, IMP, 3000, HOME, 0),  # a client-side impression event: impressions come from `served`
    (1, 13, FAV, 3000, HOME, 0),  # never served to viewer 1: not attributed
    (2, 10, FAV, 1500, HOME, 0),  # viewer 2's own impression of 10
    (3, 10, FAV, 1500, HOME, 0),  # viewer 3 was never served 10
]

EXPECTED = {
    # impressions (negatives unless an action row follows)
    (1, 10, AUTHOR, IMP, 1000, HOME, 0),
    (1, 11, AUTHOR, IMP, 1000, HOME, 0),
    (1, 11, AUTHOR, IMP, 5000, HOME, 0),
    (1, 12, AUTHOR, IMP, 3000, HOME, 0),
    (2, 10, AUTHOR, IMP, 1000, HOME, 0),
    # attributed actions
    (1, 10, AUTHOR, FAV, 1000, HOME, 0),
    (1, 10, AUTHOR, REPLY, 2000, HOME, 0),
    (1, 11, AUTHOR, FAV, 1500, PROFILE, 0),
    (1, 11, AUTHOR, FAV, 5200, HOME, 0),
    (1, 11, AUTHOR, DWELL, 5300, HOME, 900),
    (2, 10, AUTHOR, FAV, 1500, HOME, 0),
}


def _served_record(i: int, viewer: int, post: int, t: int) -> dict[str, object]:
    """The i-th served row: every provenance field distinct per row, so a mix-up shows."""
    return {
        "viewer_id": viewer,
        "post_id": post,
        "author_id": AUTHOR,
        "position": i,
        "score": 0.5 + i,
        "request_id": f"req-{i}",
        "model_version": f"rank-{i}",
        "served_at_ms": t,
        "in_network": i % 2 == 0,
        "source": "ThunderSource" if i % 2 == 0 else "PhoenixSource",
        "retrieval_model_version": "" if i % 2 == 0 else f"retr-{i}",
        "action_probs": [0.01 * i] * 64,
        "predicted_dwell_s": 2.0 + i,
        "weighted_score": 0.25 + i,
        "experiment_bucket": f"arm-{i % 3}",
        "product_surface": HOME,
    }


def _provenance(i: int) -> tuple[object, ...]:
    """What the dataset keeps of served row i (served_at_ms first), in PROVENANCE order."""
    r = _served_record(i, *SERVED_ROWS[i])
    return tuple(r[c] for c in PROVENANCE)


def _write(tmp_path: Path) -> tuple[Path, Path]:
    served = pl.DataFrame(
        [_served_record(i, v, p, t) for i, (v, p, t) in enumerate(SERVED_ROWS)], schema=SERVED.schema
    )
    eng = pl.DataFrame(
        [(u, p, AUTHOR, a, t, s, d) for u, p, a, t, s, d in ENGAGEMENT_ROWS],
        schema=ENGAGEMENTS.schema,
        orient="row",
    )
    (tmp_path / "served").mkdir()
    (tmp_path / "eng").mkdir()
    # split into two files each, as replay parts are
    served[:3].write_parquet(tmp_path / "served" / "part-00000.parquet")
    served[3:].write_parquet(tmp_path / "served" / "part-00001.parquet")
    eng[:6].write_parquet(tmp_path / "eng" / "part-00000.parquet")
    eng[6:].write_parquet(tmp_path / "eng" / "part-00001.parquet")
    return tmp_path / "served", tmp_path / "eng"


def _rows(path: Path) -> list[tuple[int, ...]]:
    """The log columns of the dataset's rows (what the trainers read)."""
    return pl.read_parquet(path, columns=list(LOG_COLUMNS)).rows()


@pytest.mark.parametrize(
    ("rows_per_bucket", "one_pass"),
    [(1_000_000, True), (3, True), (3, False)],  # one bucket; many, split in one pass or by scans
)
def test_join_labels_the_hand_built_case_exactly(
    tmp_path: Path, rows_per_bucket: int, one_pass: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset, "SPLIT_IN_ONE_PASS", one_pass)
    served, eng = _write(tmp_path)
    out = tmp_path / "out" / "log.parquet"
    s = build_dataset(served, eng, out, attribution_window_ms=W, rows_per_bucket=rows_per_bucket)
    df = pl.read_parquet(out)
    assert df.schema == DATASET_SCHEMA and tuple(df.columns[: len(LOG_COLUMNS)]) == LOG_COLUMNS
    assert tuple(df.columns[len(LOG_COLUMNS) :]) == tuple(PROVENANCE)
    rows = df.select(LOG_COLUMNS).rows()
    assert len(rows) == len(set(rows)) and set(rows) == EXPECTED
    assert (s.rows, s.impressions, s.positives) == (11, 5, 6)
    assert (s.served, s.duplicate_impressions) == (6, 1)
    # 12 actions read (the client IMPRESSION is not one); RT late, CLICK early, 13 and viewer 3
    # never served: 4 unattributed; FAV 5500 and the shorter dwell are duplicates
    assert (s.engagements, s.unattributed, s.duplicate_actions) == (12, 4, 2)
    assert s.censored_impressions == 0
    assert s.buckets == (1 if rows_per_bucket > 100 else 7)
    if s.buckets == 1:  # one bucket: per viewer in time order, impressions first on ties
        keys = [(r[0], r[4], r[3] != IMP) for r in rows]
        assert keys == sorted(keys)
    assert not (out.parent / f".{out.name}.buckets").exists()
    # each row carries the served record of its impression: 11's FAV at 1500 the first serving
    # (row 1), its FAV at 5200 the second (row 2); the duplicate serving of 12 keeps row 3
    prov = {r[:5]: r[len(LOG_COLUMNS) :] for r in df.rows()}
    assert prov[(1, 11, AUTHOR, FAV, 1500)] == prov[(1, 11, AUTHOR, IMP, 1000)] == _provenance(1)
    assert prov[(1, 11, AUTHOR, FAV, 5200)] == prov[(1, 11, AUTHOR, DWELL, 5300)] == _provenance(2)
    assert prov[(1, 12, AUTHOR, IMP, 3000)] == _provenance(3)
    assert prov[(2, 10, AUTHOR, FAV, 1500)] == _provenance(5) and prov[
        (1, 10, AUTHOR, REPLY, 2000)
    ] == _provenance(0)


def test_rows_read_back_by_the_trainer(tmp_path: Path) -> None:
    from phoenix.log_dir import LOG_COLUMNS as TRAINER_COLUMNS
    from phoenix.ranker.data import impressions_from_log, read_log

    served, eng = _write(tmp_path)
    out = tmp_path / "log.parquet"
    build_dataset(served, eng, out, attribution_window_ms=W)
    assert TRAINER_COLUMNS == LOG_COLUMNS
    imp = impressions_from_log(read_log(out))
    by_pair = {(r["user_id"], r["post_id"]): r for r in imp.iter_rows(named=True)}
    assert by_pair[(1, 12)]["action_mask"] == 0  # the negative
    assert by_pair[(1, 10)]["action_mask"] == (1 << FAV) | (1 << REPLY)
    assert by_pair[(1, 11)]["dwell_ms"] == 900


def test_impressions_whose_window_passes_the_log_end_are_dropped_with_their_actions(tmp_path: Path) -> None:
    served, eng = _write(tmp_path)
    out = tmp_path / "log.parquet"
    # the engagement log is complete before 5500: (1, 11, 5000)'s window [5000, 6000] is not
    s = build_dataset(served, eng, out, attribution_window_ms=W, engagements_until_ms=5_500)
    censored = {r for r in EXPECTED if r[:2] == (1, 11) and r[4] >= 5000}
    assert set(_rows(out)) == EXPECTED - censored
    assert s.censored_impressions == 1 and s.censored_actions == 4  # FAV x2 + DWELL x2, before dedup


def test_window_edges_move_with_the_window(tmp_path: Path) -> None:
    served, eng = _write(tmp_path)
    out = tmp_path / "log.parquet"
    build_dataset(served, eng, out, attribution_window_ms=W + 1)
    assert (1, 10, AUTHOR, RT, 2001, HOME, 0) in set(_rows(out))  # now exactly at the end
    build_dataset(served, eng, out, attribution_window_ms=0)
    actions = {r for r in _rows(out) if r[3] != IMP}
    assert actions == {(1, 10, AUTHOR, FAV, 1000, HOME, 0)}  # only the same-millisecond one


def test_empty_inputs_give_an_empty_log(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "e").mkdir()
    s = build_dataset(tmp_path / "s", tmp_path / "e", tmp_path / "log.parquet")
    df = pl.read_parquet(tmp_path / "log.parquet")
    assert df.height == 0 and df.schema == DATASET_SCHEMA and s.rows == 0


def test_a_served_replay_without_the_newer_columns_still_joins(tmp_path: Path) -> None:
    """Replays written before the richer served record: its columns are null, the surface is the
    home timeline, the labels are the same."""
    served, eng = _write(tmp_path)
    old_columns = ["viewer_id", "post_id", "author_id", "position", "score", "request_id"]
    old_columns += ["model_version", "served_at_ms", "in_network"]
    part = served / "part-00000.parquet"
    pl.read_parquet(part, columns=old_columns).write_parquet(part)  # one old part, one new
    out = tmp_path / "log.parquet"
    build_dataset(served, eng, out, attribution_window_ms=W)
    assert set(_rows(out)) == EXPECTED
    df = pl.read_parquet(out).filter(pl.col("action") == IMP)
    old = df.filter(pl.col("request_id").is_in(["req-0", "req-1", "req-2"]))  # the old part's
    assert old["experiment_bucket"].null_count() == old["source"].null_count() == old.height == 3
    assert old["product_surface"].to_list() == [HOME] * 3 and old["model_version"].to_list() == [
        "rank-0",
        "rank-1",
        "rank-2",
    ]
    new = df.filter(pl.col("post_id") == 12)
    assert new.select("source", "experiment_bucket").row(0) == ("PhoenixSource", "arm-0")


@pytest.mark.integration
def test_replayed_served_and_engagement_logs_join(settings: Settings, tmp_path: Path) -> None:
    """Both logs from the broker through replay; the engagement replay's `until` (its manifest)
    censors the impressions whose window it does not cover."""
    producer = make_producer(settings)
    for viewer, post, t in [(1, 10, 1000), (1, 11, 1900)]:
        m = ev.ServedEvent(viewer_id=viewer, post_id=post, author_id=AUTHOR, served_at_ms=t)
        producer.produce(settings.topic("served"), value=m.SerializeToString(), timestamp=t)
    for user, post, t in [(1, 10, 1200), (1, 11, 2300), (1, 11, 2450)]:
        e = ev.EngagementEvent(user_id=user, post_id=post, author_id=AUTHOR, action=FAV, timestamp_ms=t)
        producer.produce(settings.topic("engagements"), value=e.SerializeToString(), timestamp=t)
    assert producer.flush(10) == 0
    replay_topic(settings, "served", 1000, 2000, tmp_path / "served")
    replay_topic(settings, "engagements", 1000, 2400, tmp_path / "eng")  # 2450 is not replayed
    out = tmp_path / "log.parquet"
    s = build_dataset(tmp_path / "served", tmp_path / "eng", out, attribution_window_ms=500)
    assert s.engagements_until_ms == 2400 and s.censored_impressions == 1  # 1900 + 500 >= 2400
    assert set(_rows(out)) == {(1, 10, AUTHOR, IMP, 1000, HOME, 0), (1, 10, AUTHOR, FAV, 1200, 0, 0)}
    build_dataset(tmp_path / "served", tmp_path / "eng", out, 500, engagements_until_ms=2401)
    assert (1, 11, AUTHOR, FAV, 2300, 0, 0) in set(_rows(out))
