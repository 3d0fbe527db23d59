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


def test_new_users_and_follow_backs(world_dir: Path) -> None:
    """New users (snowflake ids, no history) have ground truth like everyone; their follows make
    posts in-network. Follow backs (author -> user) make nothing in-network."""
    truth = GroundTruth(world_dir)
    users = pl.read_parquet(world_dir / "users.parquet")
    follows = pl.read_parquet(world_dir / "follows.parquet")
    posts = pl.read_parquet(world_dir / "posts.parquet")
    new = users.filter(pl.col("created_at_ms") > 0)["user_id"].to_list()
    assert new
    for user in new:
        followed = set(
            follows.filter((pl.col("user_id") == user) & (pl.col("kind") == "follow"))["target_user_id"]
        )
        p = truth.probabilities(user, posts["post_id"].to_numpy())
        assert np.isfinite(p[em.FAV]).all()
        in_net = posts["author_id"].is_in(list(followed)).to_numpy()
        # FOLLOW_AUTHOR is 0.001 x gate in network, 0.02 x gate out of it
        ratio = p[em.FOLLOW_AUTHOR] / p[em.FAV]
        np.testing.assert_allclose(ratio[in_net], 0.001 / 0.14)
        np.testing.assert_allclose(ratio[~in_net], 0.02 / 0.14)
    back = follows.filter(pl.col("kind") == "follow_back").row(0, named=True)
    user, author = back["target_user_id"], back["user_id"]
    follows_author = follows.filter(
        (pl.col("user_id") == user) & (pl.col("target_user_id") == author) & (pl.col("kind") == "follow")
    ).height
    assert follows_author == 1  # the follow back answers the user's follow
