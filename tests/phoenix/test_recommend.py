"""Batch scoring (`foryou recommend`): its scores equal the serving handlers' for the same user,
history and candidates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from foryou.app.cli import app
from foryou.core import user_state
from phoenix.ranker.checkpoint import save_model
from phoenix.ranker.config import POSITIVE_HEADS, RankerConfig
from phoenix.ranker.data import impressions_from_log, read_log
from phoenix.ranker.handler import Candidates, History, RankingHandler
from phoenix.ranker.model import RankerModel
from phoenix.recommend import RecommendConfig, read_candidates, recommend
from phoenix.retrieval.handler import RetrievalHandler
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, save_two_tower

NOW_MS = 1_784_592_000_000
USERS = np.array([1, 2, 3, 4], dtype=np.int64)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(log Parquet: 4 users x 10 impressions of 30 posts, favorites on every third; retrieval
    checkpoint; ranker checkpoint), models untrained (seeded)."""
    d = tmp_path_factory.mktemp("rec")
    rng = np.random.default_rng(0)
    rows = []
    for u in USERS.tolist():
        for i, p in enumerate(rng.choice(np.arange(1, 31), 10, replace=False).tolist()):
            t = 1_000_000 + 1_000 * i
            rows.append((u, p, 100 + p % 5, "impression", t))
            if i % 3 == 0:
                rows.append((u, p, 100 + p % 5, "favorite", t + 10))
    u, p, a, act, t = zip(*rows, strict=True)
    pl.DataFrame(
        {"user_id": u, "post_id": p, "author_id": a, "action": act, "timestamp_ms": t}
    ).write_parquet(d / "log.parquet")
    torch.manual_seed(0)
    save_two_tower(d / "ret", TwoTowerModel(TwoTowerConfig.tiny()))
    save_model(d / "rnk", RankerModel(RankerConfig.tiny()))
    return d / "log.parquet", d / "ret", d / "rnk"


def _history(log: Path, user: int) -> np.ndarray:
    imp = impressions_from_log(read_log(log)).filter(pl.col("user_id") == user)
    seq = np.zeros(imp.height, dtype=user_state.SEQ_DTYPE)
    for c in ("post_id", "author_id", "action_mask", "timestamp_ms", "dwell_ms"):
        seq[c] = imp[c].to_numpy()
    seq["product_surface"] = imp["product_surface"].to_numpy()
    return seq


def test_two_stage_scores_equal_the_handlers(setup: tuple[Path, Path, Path]) -> None:
    log, ret_dir, rnk_dir = setup
    cfg = RecommendConfig(top_k=5, retrieve=12, now_ms=NOW_MS, probabilities=True)
    out = recommend(USERS, log, ret_dir, rnk_dir, config=cfg)
    assert out.height == 4 * 5
    assert out["rank"].to_list() == [1, 2, 3, 4, 5] * 4

    ret = RetrievalHandler.from_dir(ret_dir)
    logged = impressions_from_log(read_log(log)).unique("post_id").sort("post_id")
    ret.add_posts(logged["post_id"].to_numpy(), logged["author_id"].to_numpy())
    rnk = RankingHandler.from_dir(rnk_dir)
    for user in USERS.tolist():
        seq = _history(log, user)
        found = ret.retrieve(user, seq, 12, exclude_post_ids=seq["post_id"])
        assert len(found) == 12
        posts = np.array([f[0] for f in found])
        authors = np.array([f[1] for f in found])
        assert not np.isin(posts, seq["post_id"]).any()  # history excluded
        h = History(
            seq["post_id"], seq["author_id"], seq["action_mask"], seq["product_surface"].astype(np.int64),
            seq["dwell_ms"],
        )  # fmt: skip
        probs, _ = rnk.predict(user, h, Candidates(posts, authors, np.zeros(12, np.int64)), now_ms=NOW_MS)
        score = np.log(probs[:, list(POSITIVE_HEADS)].astype(np.float64).sum(1))
        top = np.argsort(-score, kind="stable")[:5]
        got = out.filter(pl.col("user_id") == user)
        assert got["post_id"].to_list() == posts[top].tolist()
        np.testing.assert_allclose(got["score"].to_numpy(), score[top], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got["p_favorite"].to_numpy(), probs[top, 1], rtol=1e-6)
        assert got["score"].n_unique() == 5  # scores are informative, not constant


def test_retrieval_only_and_given_candidates(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    log, ret_dir, rnk_dir = setup
    only = recommend(USERS[:1], log, ret_dir, config=RecommendConfig(top_k=3))
    ret = RetrievalHandler.from_dir(ret_dir)
    logged = impressions_from_log(read_log(log)).unique("post_id").sort("post_id")
    ret.add_posts(logged["post_id"].to_numpy(), logged["author_id"].to_numpy())
    seq = _history(log, 1)
    found = ret.retrieve(1, seq, 3, exclude_post_ids=seq["post_id"])
    assert only["post_id"].to_list() == [f[0] for f in found]
    np.testing.assert_allclose(only["score"].to_numpy(), [f[2] for f in found], rtol=1e-6)

    pl.DataFrame({"user_id": [2, 2, 2, 9], "post_id": [5, 6, 7, 5]}).write_csv(tmp_path / "c.csv")
    cands = read_candidates(tmp_path / "c.csv")
    got = recommend(np.array([2, 9]), log, None, rnk_dir, cands, RecommendConfig(top_k=2, now_ms=NOW_MS))
    assert got.filter(pl.col("user_id") == 2).height == 2
    assert set(got.filter(pl.col("user_id") == 2)["post_id"].to_list()) <= {5, 6, 7}
    assert got.filter(pl.col("user_id") == 9)["post_id"].to_list() == [5]  # not in the log: empty history
    with pytest.raises(ValueError, match="either a retrieval model or a candidates file"):
        recommend(USERS, log, ret_dir, rnk_dir, cands)


def test_cli_writes_parquet(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    log, ret_dir, rnk_dir = setup
    pl.DataFrame({"user_id": [3, 4]}).write_csv(tmp_path / "users.csv")
    out = tmp_path / "rec.parquet"
    args = ["recommend", "--users", str(tmp_path / "users.csv"), "--logs", str(log), "--out", str(out)]
    res = CliRunner().invoke(
        app, [*args, "--retrieval", str(ret_dir), "--ranker", str(rnk_dir), "--top-k", "4"]
    )
    assert res.exit_code == 0, res.output
    df = pl.read_parquet(out)
    assert df.columns == ["user_id", "rank", "post_id", "author_id", "score"]
    assert df.height == 8 and sorted(set(df["user_id"].to_list())) == [3, 4]
    bad = CliRunner().invoke(app, [*args, "--candidates", str(tmp_path / "users.csv")])
    assert bad.exit_code == 2 and "lacks column(s) post_id" in " ".join(bad.output.split())
