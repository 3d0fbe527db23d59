"""`foryou experiment report` on synthetic logs: per-bucket rates with user-clustered confidence
intervals; an A/A split shows no significant difference, a worse bucket a significant one of the
right size; the simulator's ground truth per bucket; the CLI prints the tables and writes the PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from foryou.app.cli import app
from foryou.app.experiment_report import log_report, ratio_estimate, sim_report
from home_mixer.params import ACTION_HEADS
from protos import events_pb2 as ev

FAV = ACTION_HEADS["favorite"]


def synthetic_log(
    p_fav: dict[str, float], users: int = 400, per_user: int = 20, seed: int = 0
) -> pl.DataFrame:
    """Impression rows + favorite rows; each user's own rate varies around its bucket's (so one
    user's impressions are correlated, as on a real feed)."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, int, int, str]] = []
    uid = 0
    for bucket, p in p_fav.items():
        for _ in range(users):
            uid += 1
            own = float(np.clip(rng.normal(p, p / 2), 0, 1))
            for i in range(per_user):
                rows.append((uid, i + 1, ev.ActionName.IMPRESSION, 1000 + i, f"exp:{bucket},other:x"))
                if rng.random() < own:
                    rows.append((uid, i + 1, FAV, 1000 + i, f"exp:{bucket},other:x"))
    return pl.DataFrame(
        rows, schema=["user_id", "post_id", "action", "served_at_ms", "experiment_bucket"], orient="row"
    )


def _fav(rows: pl.DataFrame, bucket: str) -> dict:
    return rows.filter((pl.col("bucket") == bucket) & (pl.col("metric") == "favorite rate")).row(
        0, named=True
    )


def test_aa_is_not_significant_and_ab_is() -> None:
    exp, aa = log_report(synthetic_log({"control": 0.1, "same": 0.1}), "exp")
    assert exp == "exp"
    same = _fav(aa, "same")
    assert same["impressions"] == 8000 and same["users"] == 400
    assert same["significant"] is False and same["diff_low"] < 0 < same["diff_high"]
    _, ab = log_report(synthetic_log({"control": 0.1, "worse": 0.05}), "exp")
    worse, ctl = _fav(ab, "worse"), _fav(ab, "control")
    assert worse["significant"] is True and worse["diff_low"] <= -0.05 <= worse["diff_high"]
    assert ctl["ci_low"] < 0.1 < ctl["ci_high"] and ctl["diff"] is None
    # the realized weighted score moves with the favorites (weight 0.5)
    w = ab.filter((pl.col("bucket") == "worse") & (pl.col("metric") == "weighted score")).row(0, named=True)
    assert w["significant"] is True and w["diff"] < 0


def test_clustered_interval_is_wider_than_a_binomial_one() -> None:
    # 10 users: 5 always favorite, 5 never (20 impressions each): rate 0.5
    y = pl.Series([20] * 5 + [0] * 5)
    n = pl.Series([20] * 10)
    e = ratio_estimate(y, n)
    assert e.value == 0.5
    assert e.se > 3 * np.sqrt(0.25 / 200)  # the naive SE treats 200 impressions as independent


def test_simulator_ground_truth_and_the_cli(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    feeds = pl.DataFrame(
        {
            "round": np.repeat(np.arange(1, 5), 100),
            "user_id": np.tile(np.arange(100), 4),
            "bucket": np.where(np.tile(np.arange(100), 4) % 2, "exp:worse", "exp:control"),
        }
    ).with_columns(
        served_favorite=pl.when(pl.col("bucket") == "exp:worse").then(0.04).otherwise(0.12)
        + pl.Series(rng.normal(0, 0.01, 400)),
        served_negative=pl.lit(0.01) + pl.Series(rng.normal(0, 0.002, 400)),
        newest_favorite=pl.lit(0.04),
        best_favorite=pl.lit(0.14),
    )
    _, rows = sim_report(feeds)
    fav = rows.filter((pl.col("bucket") == "worse") & (pl.col("metric") == "true P(favorite)")).row(
        0, named=True
    )
    assert fav["significant"] is True and abs(fav["diff"] + 0.08) < 0.005
    neg = rows.filter((pl.col("bucket") == "worse") & (pl.col("metric") == "true P(negative)")).row(
        0, named=True
    )
    assert neg["significant"] is False
    feeds.write_parquet(tmp_path / "feeds.parquet")
    (tmp_path / "experiment-log").mkdir()
    synthetic_log({"control": 0.1, "worse": 0.05}).write_parquet(
        tmp_path / "experiment-log" / "engagements.parquet"
    )
    res = CliRunner().invoke(app, ["experiment", "report", "--sim", str(tmp_path)])
    assert res.exit_code == 2 and "several experiments (exp, other)" in res.output  # which one?
    res = CliRunner().invoke(
        app, ["experiment", "report", "--sim", str(tmp_path), "--experiment", "exp"], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    assert "logged engagements" in res.output and "ground truth" in res.output
    assert "significant" in res.output and "favorite rate" in res.output
    assert (tmp_path / "experiment-exp.png").stat().st_size > 10_000
    res = CliRunner().invoke(app, ["experiment", "report", "--sim", str(tmp_path), "--experiment", "nope"])
    assert res.exit_code == 2 and "no records of experiment 'nope'" in res.output
