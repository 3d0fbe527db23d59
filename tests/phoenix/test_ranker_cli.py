"""`foryou train ranker` and `foryou eval ranker` on a tiny world, flags from the environment, and
clear errors for bad paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foryou.app.cli import app
from foryou.core.actions import ACTION_NAMES
from phoenix.ranker.checkpoint import load_model

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


@pytest.fixture(scope="module")
def model_dir(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ranker")
    args = ["train", "ranker", "--logs", str(tiny_world), "--out", str(out), "--tiny", "--threads", "1"]
    # --max-steps comes from the environment (auto FORYOU_<COMMAND>_<FLAG>)
    res = runner.invoke(app, args, env={"FORYOU_TRAIN_RANKER_MAX_STEPS": "24"})
    assert res.exit_code == 0, res.output
    # a summary table with one name per action (the full table is metrics.json)
    assert "gap_closure.favorite" in _flat(res.output) and "SERVER_TWEET_FAV" not in res.output
    assert "without post semantic ids" not in _flat(res.output)
    return out


def test_train_writes_checkpoint_metrics_and_curves(model_dir: Path) -> None:
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["steps"] == 24
    for f in ("model.safetensors", "config.json", "training_curves.png", "eval_auc.png"):
        assert (model_dir / f).exists(), f
    model, meta = load_model(model_dir)
    assert meta["model_version"] == metrics["model_version"]
    assert metrics["sid_posts"] > 0  # the world directory's posts table supplied the SIDs
    assert meta["train"]["num_threads"] == 1


def test_eval_prints_model_oracle_and_baselines(tiny_world: Path, model_dir: Path) -> None:
    args = ["eval", "ranker", "--logs", str(tiny_world), "--model", str(model_dir), "--markdown"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = _flat(res.output)
    for key in ("headline.favorite.model", "headline.favorite.oracle", "eval.json or --json"):
        assert key in out
    assert "metrics.model." not in out  # the per-action tables are in eval.json, not the summary
    assert "| favorite |" in res.output and "matrix_factorization" in res.output
    assert "SERVER_TWEET_FAV" not in res.output  # one action table's names (foryou.core.actions)
    saved = json.loads((model_dir / "eval.json").read_text())
    assert saved["model_version"] == json.loads((model_dir / "metrics.json").read_text())["model_version"]
    assert {"model", "oracle", "author_popularity", "matrix_factorization"} <= set(saved["metrics"])
    # eval.json names every action by its one short name (issue 21), the headline's names included
    short = set(ACTION_NAMES.values())
    assert "favorite" in saved["actions"] and set(saved["actions"]) <= short
    for table in saved["metrics"].values():
        assert set(table) <= short and "favorite" in table
    assert set(saved["gap_closure"]) <= short and set(saved["headline"]) <= short
    assert "SERVER_TWEET" not in json.dumps(saved) and "CLIENT_TWEET" not in json.dumps(saved)
    res = runner.invoke(app, [*args[:-1], "--json"])  # the same evaluation, every metric as JSON
    assert res.exit_code == 0, res.output
    as_json = json.loads(res.stdout)
    assert as_json["metrics"].keys() == saved["metrics"].keys()  # every metric, as JSON
    assert as_json["metrics"]["model"].keys() == saved["metrics"]["model"].keys()
    assert as_json["actions"] == saved["actions"]


def test_training_from_a_bare_log_warns_about_missing_sids(tiny_world: Path, tmp_path: Path) -> None:
    args = ["--logs", str(tiny_world / "engagements.parquet"), "--out", str(tmp_path / "m"), "--tiny"]
    res = runner.invoke(app, ["train", "ranker", *args, "--max-steps", "2", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "without post semantic ids" in _flat(res.output)
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["sid_posts"] == 0


def test_bad_paths_are_clear_errors(tiny_world: Path, model_dir: Path, tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "o")]
    res = runner.invoke(app, ["train", "ranker", "--logs", str(tmp_path / "nope"), *out])
    assert res.exit_code == 2 and "no such file" in _flat(res.output)
    assert not (tmp_path / "o" / "model.safetensors").exists()
    res = runner.invoke(app, ["train", "ranker", "--logs", str(tiny_world), *out, "--sids", "/nope.parquet"])
    assert res.exit_code == 2 and "nope.parquet" in _flat(res.output)
    res = runner.invoke(app, ["eval", "ranker", "--logs", str(tiny_world), "--model", str(tmp_path)])
    assert res.exit_code == 2 and "error" in res.output
    res = runner.invoke(app, ["train", "ranker", "--logs", str(tiny_world), *out, "--tiny", "--small"])
    assert res.exit_code == 2 and "exclusive" in _flat(res.output)
