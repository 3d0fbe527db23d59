"""GroundTruth reproduces the world's oracle columns exactly, and extends them to unseen pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from world import WorldConfig, generate_world
from world import engagement_model as em
from world.ground_truth import GroundTruth


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(WorldConfig.tiny(seed=3)).save(tmp_path_factory.mktemp("world"))


def test_equals_the_oracle_on_every_drawn_impression(world_dir: Path) -> None:
    oracle = pl.read_parquet(world_dir / "oracle.parquet")
    probs = GroundTruth(world_dir).probabilities(oracle["user_id"].to_numpy(), oracle["post_id"].to_numpy())
    assert set(probs) == set(em.MODELLED_ACTIONS)
    for a, p in probs.items():
        np.testing.assert_allclose(p, oracle[em.oracle_column(a)].to_numpy(), rtol=0, atol=1e-12)


def test_any_pair_and_unknown_ids(world_dir: Path) -> None:
    truth = GroundTruth(world_dir)
    posts = pl.read_parquet(world_dir / "posts.parquet")["post_id"].to_numpy()
    user = int(pl.read_parquet(world_dir / "users.parquet")["user_id"][0])
    p = truth.probabilities(user, np.r_[posts, 12345])  # every post for one user, plus an unknown id
    fav = p[em.FAV]
    assert np.isfinite(fav[:-1]).all() and np.isnan(fav[-1])
    assert ((fav[:-1] > 0) & (fav[:-1] < 1)).all() and fav[:-1].std() > 0  # it varies by post
    assert np.isnan(truth.probabilities(-5, posts[:3])[em.FAV]).all()  # unknown user
