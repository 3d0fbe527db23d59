"""`foryou train retrieval`, `eval retrieval`, `index build` and `index stats` on a tiny world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from foryou.app.cli import app
from phoenix.retrieval.bulk_builder import read_posts, read_sids
from phoenix.retrieval.evaluate import evaluate_retrieval
from phoenix.retrieval.index import PostIndex
from phoenix.retrieval.model import load_two_tower
from world.retrieval_oracle import retrieval_oracle

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


@pytest.fixture(scope="module")
def model_dir(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model")
    args = ["train", "retrieval", "--logs", str(tiny_world), "--out", str(out), "--preset", "tiny"]
    res = runner.invoke(app, [*args, "--max-steps", "40", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "recall@100" in res.output and "popularity" in res.output
    return out


def test_train_writes_checkpoint_and_metrics(model_dir: Path) -> None:
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["steps"] == 40
    _, meta = load_two_tower(model_dir)
    assert meta["model_version"] == metrics["model_version"]


def test_train_rejects_unknown_preset(tiny_world: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["train", "retrieval", "--logs", str(tiny_world), "--out", str(tmp_path), "--preset", "x"]
    )
    assert res.exit_code != 0 and not (tmp_path / "config.json").exists()


def test_index_build_and_stats(tiny_world: Path, model_dir: Path, tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    res = runner.invoke(
        app, ["index", "build", "--model", str(model_dir), "--posts", str(tiny_world), "--out", str(snap)]
    )
    assert res.exit_code == 0, res.output
    posts = pl.read_parquet(tiny_world / "posts.parquet")
    live = posts.filter(pl.col("deleted_at_ms") == 0)
    assert 0 < live.height < posts.height  # the world has deleted posts: they are not indexed

    res = runner.invoke(app, ["index", "stats", str(snap), "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)
    _, meta = load_two_tower(model_dir)
    assert stats["posts"] == live.height and stats["kind"] == "flat"
    assert stats["model_version"] == meta["model_version"]
    assert stats["memory_bytes"] >= live.height * stats["dim"] * 4 and stats["build_seconds"] >= 0
    res = runner.invoke(app, ["index", "stats", str(snap)])
    assert res.exit_code == 0 and "memory_bytes" in res.output and "flat" in res.output

    # the snapshot holds the candidate-tower vectors of exactly the live posts
    idx = PostIndex.load(snap)
    model, _ = load_two_tower(model_dir)
    ids, authors = read_posts(tiny_world)
    assert set(idx.live_posts()[0].tolist()) == set(live["post_id"].to_list()) == set(ids.tolist())
    sids = read_sids(tiny_world)
    assert sids is not None and len(sids) == posts.height  # the world's posts carry SIDs
    vecs = model.embed_posts(ids, authors, sids=sids)
    q = vecs[0]
    # posts sharing author and SID have equal vectors: compare scores, not the order of ties
    exact = dict(zip(ids.tolist(), (vecs @ q).tolist(), strict=True))
    found = idx.search(q, 50)
    np.testing.assert_allclose([s for _, _, s in found], sorted(exact.values(), reverse=True)[:50], atol=1e-5)
    np.testing.assert_allclose([s for _, _, s in found], [exact[p] for p, _, _ in found], atol=1e-5)

    # a posts Parquet file works as well; above exact_max_size: PQ by default, or --kind hnsw
    for kind in ("pq", "hnsw"):
        out = tmp_path / kind
        args = ["--posts", str(tiny_world / "posts.parquet"), "--out", str(out), "--exact-max-size", "100"]
        res = runner.invoke(
            app,
            ["index", "build", "--model", str(model_dir), *args, *(["--kind", kind] if kind != "pq" else [])],
        )
        assert res.exit_code == 0, res.output
        stats = json.loads(runner.invoke(app, ["index", "stats", str(out), "--json"]).output)
        assert stats["kind"] == kind and stats["posts"] == live.height
        approx = PostIndex.load(out)
        assert len({p for p, _, _ in approx.search(q, 50)} & set(idx.exact_search(q, 50))) >= 45


def test_index_commands_report_bad_paths(model_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        ["index", "build", "--model", str(model_dir), "--posts", str(tmp_path), "--out", str(tmp_path / "s")],
    )
    assert res.exit_code == 2 and "no posts Parquet" in _flat(res.output)
    res = runner.invoke(app, ["index", "stats", str(tmp_path)])
    assert res.exit_code == 2 and "not an index snapshot" in _flat(res.output)


def test_eval_includes_oracle_top_k(tiny_world: Path, model_dir: Path) -> None:
    m = evaluate_retrieval(tiny_world, model_dir, oracle=retrieval_oracle(tiny_world))
    saved = json.loads((model_dir / "metrics.json").read_text())
    assert m["model"] == saved["model"]  # same split, corpus and users as training's own eval
    # the ground-truth model ranks held-out positives far above chance
    assert m["oracle"]["recall@100"] > 2 * m["random"]["recall@100"]
    res = runner.invoke(app, ["eval", "retrieval", "--logs", str(tiny_world), "--model", str(model_dir)])
    assert res.exit_code == 0, res.output
    assert "oracle.recall@1000" in res.output
