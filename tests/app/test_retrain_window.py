"""`foryou retrain --since/--until` on live traffic: a tiny world's impressions published as home_mixer
writes its `served` records and its engagements logged through LogEngagements' handler, on the real
broker; the command replays both topics, joins them, trains, gates, registers and promotes (or, with
a rule that cannot hold, does not), reports in the version's folder and removes its work directory.
Also the window arithmetic and the `--every` loop's clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from foryou.app.cli import app
from foryou.app.periodic import run_every
from foryou.app.retrain_window import LAST_PREFIX, RUN_LOCK, RetrainWindow, remove_dead_sliding_runs
from foryou.core.kafka import make_producer
from foryou.core.settings import Settings
from foryou.core.snowflake import timestamps_ms
from home_mixer.candidate import PostCandidate
from home_mixer.engagement_log_handler import EngagementLogHandler
from home_mixer.query import ScoredPostsQuery
from home_mixer.side_effects.served_record import served_event
from phoenix.registry import Registry
from protos import events_pb2 as ev
from protos import home_mixer_pb2
from world import WorldConfig, generate_world

runner = CliRunner()
HOUR = 3_600_000
MINUTE = 60_000
IMP = ev.ActionName.IMPRESSION


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    res = runner.invoke(app, list(args), env={"COLUMNS": "250", **(env or {})})
    return res.exit_code, res.output


def _publish_served(settings: Settings, imps: pl.DataFrame) -> None:
    """Every impression as home_mixer's served record (served_record.served_event), keyed by viewer
    like the served side effect, stamped with the impression's time, in time order as live traffic
    arrives (a replay stops at a partition's first message past the window). Requests: a viewer's
    impressions per 10 minutes."""
    imps = imps.sort("timestamp_ms", "user_id").with_columns(req=pl.col("timestamp_ms") // (10 * MINUTE))
    imps = imps.with_columns(pos=pl.int_range(pl.len()).over("user_id", "req"))
    producer = make_producer(settings)
    topic = settings.topic(settings.served_topic)
    for u, p, a, t, req, pos in imps.select(
        "user_id", "post_id", "author_id", "timestamp_ms", "req", "pos"
    ).iter_rows():
        oon = p % 3 == 0
        query = ScoredPostsQuery(viewer_id=u, request_id=f"r{u}-{req}", model_version="world-ranker")
        cand = PostCandidate(
            post_id=p,
            author_id=a,
            source="PhoenixSource" if oon else "ThunderSource",
            in_network=not oon,
            retrieval_model_version="world-retrieval" if oon else "",
            action_probs=np.full(64, 0.01, np.float32),
            dwell_time=3.0,
            weighted_score=0.5,
            score=0.4,
        )
        value = served_event(query, cand, pos, t).SerializeToString()
        producer.produce(topic, key=str(u).encode(), value=value, timestamp=t)
    assert producer.flush(30) == 0


def _log_engagements(settings: Settings, acts: pl.DataFrame) -> None:
    """Through home_mixer's LogEngagements handler (validation, acks), in batches of 1,000."""
    handler = EngagementLogHandler(make_producer(settings, **{"linger.ms": 1}), settings.topic("engagements"))
    events = [ev.EngagementEvent(**r) for r in acts.sort("timestamp_ms").iter_rows(named=True)]

    async def go() -> int:
        try:
            n = 0
            for i in range(0, len(events), 1000):
                req = home_mixer_pb2.LogEngagementsRequest(events=events[i : i + 1000])
                n += (await handler.log_engagements(req)).accepted
            return n
        finally:
            await handler.close()

    assert asyncio.run(go()) == len(events)


@pytest.mark.integration
def test_retrain_on_a_window_of_served_and_logged_engagements(settings: Settings, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    world = generate_world(WorldConfig.tiny(seed=0)).rebased(now - HOUR)
    log = world.engagements
    imps, acts = log.filter(pl.col("action") == IMP), log.filter(pl.col("action") != IMP)
    _publish_served(settings, imps)
    since, until = int(imps["timestamp_ms"].min()), int(imps["timestamp_ms"].max()) + 1
    # 40 engagements from before the window (posts created before it): history context, never labels
    created = pl.Series(timestamps_ms(acts["post_id"].to_numpy()))
    earlier = (
        acts.with_columns(created=created)
        .filter(pl.col("created") < since - 1_000)
        .head(40)
        .with_columns(timestamp_ms=pl.col("created") + 1)
        .drop("created")
    )
    assert earlier.height == 40
    _log_engagements(settings, pl.concat([earlier, acts]))

    root, data = tmp_path / "models", tmp_path / "data"
    base = ["--kafka-bootstrap", settings.kafka_bootstrap, "--data-dir", str(data), "retrain"]
    base += ["--since", str(since), "--until", str(until), "--attribution-window", "2m"]
    base += ["--models", str(root), "--tiny", "--max-steps", "20", "--threads", "1"]
    env = {"FORYOU_TOPIC_PREFIX": settings.topic_prefix}
    code, out = _invoke(*base, env=env)
    assert code == 0, out
    # the stages, in order, then the verdict
    text = " ".join(out.split())
    stages = [
        "[1/6] replay served",
        "[2/6] replay engagements",
        "[3/6] replay engagements",  # the week before the window: history context
        "40 records (40 new, 0 malformed)",
        "[4/6] join",
        "log: 40 earlier engagement events as history context",
        "[5/6] retrain",
        "[6/6] ranker-0001",
    ]
    assert all(s in text for s in stages) and [text.index(s) for s in stages] == sorted(
        text.index(s) for s in stages
    )
    assert "15,000 impressions, 18,449 attributed actions, 0 censored" in text and "promoted" in text
    reg = Registry(root)
    assert reg.promoted("ranker") == "ranker-0001"
    m = reg.show("ranker-0001")
    src = m["extra"]["data_source"]
    assert (src["served"]["since_ms"], src["served"]["until_ms"], src["served"]["records"]) == (
        since,
        until,
        15_000,
    )
    assert src["engagements"]["until_ms"] == until + 2 * MINUTE and src["engagements"]["records"] == 18_449
    assert src["dataset"]["impressions"] == 15_000 and src["dataset"]["positives"] == 18_449
    assert m["data_window"]["train_impressions"] + m["data_window"]["eval_impressions"] == 15_000
    report = (reg.path("ranker-0001") / "report.md").read_text()
    assert "## Data: replayed from Kafka and joined" in report and "15,000 records" in report
    assert not any((data / "retrain").iterdir())  # the run's replays and logs are removed

    # the same window with a rule no candidate can meet: registered, warm-started, not promoted (3)
    code, out = _invoke(*base, "--weighted-tolerance", "-1", "--json", env=env)
    assert code == 3, out
    s = json.loads(out.strip().splitlines()[-1])
    assert s["version"] == "ranker-0002" and not s["promoted"] and not s["gate_ok"]
    assert s["warm_started_from"] == "ranker-0001" and s["parent"] == "ranker-0001"
    assert s["window"]["since_ms"] == since and s["datasets"]["dataset"]["impressions"] == 15_000
    assert s["work_dir"] is None and reg.promoted("ranker") == "ranker-0001"
    assert any(r.startswith("weighted_ndcg") for r in s["reasons"])
    v2 = reg.path("ranker-0002")
    assert "NOT promoted" in (v2 / "report.md").read_text() and (v2 / "comparison.png").stat().st_size > 0

    # a held-out window of its own (the newest 10 minutes), work kept: the logs carry provenance
    code, out = _invoke(*base, "--eval-last", "10m", "--keep-work", "--dry-run", "--json", env=env)
    assert code == 0, out
    s = json.loads(out.strip().splitlines()[-1])
    held = imps.filter(pl.col("timestamp_ms") >= until - 10 * MINUTE).height
    assert s["datasets"]["eval_dataset"]["impressions"] == held > 0
    assert s["datasets"]["dataset"]["impressions"] == 15_000 - held
    run = Path(s["work_dir"])
    assert (
        run.parent == data / "retrain"
        and run.name == f"{since}-{until - 10 * MINUTE}-eval-{until - 10 * MINUTE}-{until}"
    )
    logged = pl.read_parquet(run / "log" / "engagements.parquet")
    assert set(logged["model_version"].unique()) == {"world-ranker"}
    assert set(logged["experiment_bucket"].unique()) == {""}  # carried through: "" until experiments
    oon = logged.filter(pl.col("post_id") % 3 == 0)
    assert set(oon["retrieval_model_version"].unique()) == {"world-retrieval"}
    assert set(oon["source"].unique()) == {"PhoenixSource"}


def test_window_arithmetic() -> None:
    w = RetrainWindow(1_000, 5_000, attribution_window_ms=100)
    assert (w.train_until_ms, w.eval_range, w.end_ms, w.run_id) == (5_000, None, 5_000, "1000-5000")
    # a held-out start inside the window ends training there; its end defaults to the window's
    w = RetrainWindow(1_000, 5_000, eval_since_ms=4_000)
    assert (w.train_until_ms, w.eval_range, w.end_ms) == (4_000, (4_000, 5_000), 5_000)
    # a later held-out window: engagements are replayed to its end (+ the attribution window)
    w = RetrainWindow(1_000, 5_000, eval_since_ms=6_000, eval_until_ms=9_000)
    assert (w.train_until_ms, w.end_ms, w.run_id) == (5_000, 9_000, "1000-5000-eval-6000-9000")
    # --last: the newest 2 h whose labels are complete, i.e. ending one attribution window ago
    w = RetrainWindow.last(2 * HOUR, 10 * HOUR, 30 * MINUTE, eval_last_ms=HOUR)
    half = HOUR // 2
    assert (w.since_ms, w.until_ms, w.eval_range) == (15 * half, 19 * half, (17 * half, 19 * half))
    assert w.run_id.startswith(LAST_PREFIX)
    for bad in (dict(since_ms=5, until_ms=5), dict(since_ms=5, until_ms=9, eval_since_ms=3)):
        with pytest.raises(ValueError, match="empty training window"):
            RetrainWindow(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty held-out window"):
        RetrainWindow(1, 9, eval_since_ms=5, eval_until_ms=5)


def test_dead_sliding_runs_are_removed_live_and_explicit_ones_kept(tmp_path: Path) -> None:
    import fcntl

    dead, live, explicit = (tmp_path / n for n in (f"{LAST_PREFIX}1-2", f"{LAST_PREFIX}3-4", "5-6"))
    for d in (dead, live, explicit):
        d.mkdir()
        (d / "served").mkdir()
    with open(live / RUN_LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a run in progress
        assert remove_dead_sliding_runs(tmp_path, keep=f"{LAST_PREFIX}9-9") == [dead]
    assert not dead.exists() and live.exists() and explicit.exists()


def test_run_every_runs_until_stopped() -> None:
    stop = threading.Event()
    runs: list[int] = []
    waits: list[float] = []

    def run() -> None:
        runs.append(1)
        if len(runs) == 3:
            stop.set()  # between runs: the loop ends before the next one

    assert run_every(run, 0.01, stop, waits.append) == 3 and len(waits) == 2
    with pytest.raises(ValueError):
        run_every(run, 0, threading.Event())


def test_every_stops_cleanly_on_sigterm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """SIGTERM during a run lets it finish and report, then the loop ends (exit 0) without
    waiting for the next period; a second signal during a run interrupts it (130). The signal
    handlers are restored afterwards."""
    import foryou.app.cli.retrain as cli_retrain
    import foryou.app.retrain_window as rw

    signals = {"n": 0}

    def fake_run(settings: Settings, window: RetrainWindow, reg: Any, **kw: Any) -> Any:
        for _ in range(signals["n"]):
            os.kill(os.getpid(), signal.SIGTERM)
        retrain = SimpleNamespace(
            version="ranker-0007", promoted=True, gate_ok=True, reasons=["ok"], parent=None,
            warm_started_from=None, report=tmp_path / "report.md",
        )  # fmt: skip
        return SimpleNamespace(
            retrain=retrain, window=window, datasets={}, removed_work=True, run_dir=tmp_path
        )

    monkeypatch.setattr(rw, "retrain_window", fake_run)
    monkeypatch.setattr(cli_retrain, "check_broker", lambda settings, timeout: None)
    before = signal.getsignal(signal.SIGTERM)
    args = ["--kafka-bootstrap", "127.0.0.1:1", "retrain", "--last", "1h", "--every", "1h"]
    args += ["--models", str(tmp_path / "m")]
    signals["n"] = 1
    code, out = _invoke(*args)
    assert code == 0, out
    assert "stopping after the current run" in out and "ranker-0007" in out and "stopped after 1 run" in out
    assert signal.getsignal(signal.SIGTERM) is before
    signals["n"] = 2
    code, out = _invoke(*args)
    assert code == 130 and "interrupted" in out, out
    assert signal.getsignal(signal.SIGTERM) is before
