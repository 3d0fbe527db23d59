"""`foryou simulate` on the real broker and Redis: a tiny world, a cold (untrained) tiny ranker, a
few rounds of users reading paged feeds; the engagements arrive on Kafka through LogEngagements,
a retrain runs on the served ⨝ engagements window, its version is registered and the running
ranker serves what is promoted. Plus the reading model and the ground-truth feed figures alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from foryou.app.experiment_report import log_report, sim_report
from foryou.app.replay import replay_topic
from foryou.app.simulate import SimulateConfig, run_simulation
from foryou.core.settings import Settings
from home_mixer.experiments import load_params_file
from phoenix.registry import Registry
from protos import events_pb2 as ev
from world import WorldConfig, generate_world
from world import engagement_model as em
from world.arrivals import past
from world.ground_truth import GroundTruth
from world.reader import PositionBias, read_feed
from world.simulator import SimConfig


@pytest.mark.integration
def test_tiny_simulation_logs_engagements_and_retrains(settings: Settings, tmp_path: Path) -> None:
    rows: list[dict] = []
    sim = SimConfig(rounds=3, users_per_round=8, retrain_every=2, seed=1)
    params = tmp_path / "params.toml"  # an A/A experiment: both buckets serve the defaults
    params.write_text(
        '[[experiment]]\nname = "aa"\n[[experiment.bucket]]\nname = "control"\nshare = 0.5\n'
        '[[experiment.bucket]]\nname = "same"\nshare = 0.5\n'
    )
    config = SimulateConfig(
        preset="tiny",
        sim=sim,
        horizon_min=2.0,
        tiny_model=True,
        train_max_steps=20,
        out_dir=str(tmp_path),
        params_file=str(params),
    )
    result, paths = run_simulation(settings, config, rows.append)

    assert [r["round"] for r in rows] == [1, 2, 3]
    assert result.rounds.height == 3 and result.users.height == sum(r["feeds"] for r in rows) > 0
    # per user and round: the user id, the serving model and the ground-truth figures
    users = result.users
    assert users["user_id"].n_unique() > 1 and users["model_version"].str.starts_with("ranker-").all()
    assert ((users["best_favorite"] >= users["served_favorite"]) & (users["read"] >= 1)).all()
    # engagements went through LogEngagements to Kafka: every accepted one is on the topic
    logged = sum(r["engagements"] for r in rows)
    assert logged == users["engagements"].sum() > 0
    rep = replay_topic(settings, "engagements", result.start_ms, None, tmp_path / "replayed")
    assert rep.rows == logged
    replayed = pl.read_parquet(rep.files)
    assert set(replayed["user_id"].unique().to_list()) <= set(users["user_id"].to_list())

    # one retrain, after round 2, on the window since the start: it saw the served impressions
    assert len(result.retrains) == 1 and rows[1]["retrained"] == "ranker-0002"
    out = result.retrains[0]
    assert out.detail["impressions"] >= users.filter(pl.col("round") <= 2)["posts"].sum() > 0
    assert out.detail["positives"] > 0
    # a cold start's first retrain runs from scratch: the untrained model has nothing to keep
    assert out.detail["warm_started_from"] is None
    reg = Registry(tmp_path / "models")
    assert [m["version"] for m in reg.list("ranker")] == ["ranker-0001", "ranker-0002"]
    assert reg.show("ranker-0001")["extra"]["simulate"] == "untrained"
    # the running ranker follows the registry: after the step it serves what is promoted
    promoted = reg.show(reg.promoted("ranker"))["model_version"]
    assert out.serving == promoted
    assert set(users.filter(pl.col("round") == 3)["model_version"].to_list()) == {promoted}
    assert out.promoted == (reg.promoted("ranker") == "ranker-0002")

    assert all(p.stat().st_size > 0 for p in paths.values())
    assert pl.read_parquet(paths["rounds"]).height == 3
    names = json.loads((tmp_path / "versions.json").read_text())
    assert sorted(names.values()) == ["ranker-0001", "ranker-0002"]

    # experiments: each feed names the viewer's bucket, which is home_mixer's deterministic
    # hash(user id, salt) assignment; the served ⨝ engagements log carries it on every row
    serving = load_params_file(params)
    assert users["bucket"].to_list() == [serving.assign(u).bucket for u in users["user_id"].to_list()]
    assert set(users["bucket"]) == {"aa:control", "aa:same"}
    log = pl.read_parquet(paths["experiment_log"])
    by_user = dict(zip(users["user_id"], users["bucket"], strict=False))
    assert log.height > 0 and all(
        by_user[u] == b for u, b in log.select("user_id", "experiment_bucket").iter_rows()
    )
    exp, rows = log_report(log)
    assert exp == "aa" and set(rows["bucket"]) == {"control", "same"}
    assert rows.filter(pl.col("bucket") == "control")["impressions"].sum() > 0
    assert sim_report(users)[1].height == 4  # 2 buckets x 2 ground-truth metrics


def test_position_bias_reads_top_down_and_stops() -> None:
    bias = PositionBias(first=0.1, per_position=0.05, max_stop=0.6)
    assert np.allclose(bias.stop_probability(np.array([0, 2, 20])), [0.1, 0.2, 0.6])
    rng = np.random.default_rng(0)
    depths = [bias.depth(10, rng)[0] for _ in range(4000)]
    # P(read exactly 1) = P(stop after the first) = 0.1; nobody reads nothing
    assert min(depths) == 1 and abs(np.mean(np.array(depths) == 1) - 0.1) < 0.02
    # a later page stops sooner: the hazard follows the position in the whole feed
    later = [bias.depth(10, rng, start=10)[0] for _ in range(4000)]
    assert np.mean(later) < np.mean(depths)
    assert bias.depth(0, rng) == (0, False)
    assert PositionBias(first=0.0, per_position=0.0).depth(7, rng) == (7, False)


def test_reader_engages_as_the_ground_truth_says(tmp_path: Path) -> None:
    world = generate_world(WorldConfig.tiny(seed=0))
    truth = GroundTruth(world.save(tmp_path / "w"))
    user = int(world.users["user_id"][0])
    posts = world.posts.head(400)
    ids, authors = posts["post_id"].to_numpy(), posts["author_id"].to_numpy()
    never_stop = PositionBias(first=0.0, per_position=0.0)
    rng = np.random.default_rng(0)
    favs = np.zeros(len(ids))
    for _ in range(50):
        out = read_feed(truth, user, ids, authors, 1_000, rng, never_stop)
        assert out.read == len(ids) and not out.stopped
        fav = [e.post_id for e in out.events if e.action == em.FAV]
        favs += np.isin(ids, fav)
        # every post read is dwelled or not, exactly once; stamped after the served time in order
        dwell = [e for e in out.events if e.action in (em.DWELLED, em.NOT_DWELLED)]
        assert sorted(e.post_id for e in dwell) == sorted(ids.tolist())
        assert all(e.dwell_ms >= 10_000 for e in dwell if e.action == em.DWELLED)
        assert all(e.timestamp_ms > 1_000 for e in out.events)
        kinds = {k for _, _, k in out.graph}
        assert kinds <= {
            ev.UserEventType.USER_EVENT_FOLLOW,
            ev.UserEventType.USER_EVENT_BLOCK,
            ev.UserEventType.USER_EVENT_MUTE,
        }
    # the favorite rate over the posts follows the true P(favorite)
    p = truth.probabilities(user, ids)[em.FAV]
    assert abs(favs.sum() / 50 - p.sum()) < 4 * np.sqrt(p.sum() / 50 + 1e-9) + 0.5
    assert np.corrcoef(favs, p)[0, 1] > 0.3
    # new follows move the pair in-network in the ground truth
    author = int(ids[0] and authors[0])
    before = truth.probabilities(user, ids[:1])[em.FAV][0]
    truth.add_follows(np.array([user]), np.array([author]))
    after = truth.probabilities(user, ids[:1])[em.FAV][0]
    assert after >= before


def test_past_holds_back_what_happens_after_the_start() -> None:
    world = generate_world(WorldConfig.tiny(seed=0))
    t0 = world.config.now_ms - 3_600_000
    before = past(world, t0)
    assert before.posts["created_at_ms"].max() <= t0 < world.posts["created_at_ms"].max()
    assert before.engagements["timestamp_ms"].max() <= t0
    assert (before.posts["deleted_at_ms"] <= t0).all()
    assert 0 < before.posts.height < world.posts.height
