"""Semantic ids: world generation (RQ-KMeans), the post id -> SID lookup, the model's SID input and
the serving handler's hydration."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import torch

from phoenix.ranker.config import RankerConfig
from phoenix.ranker.handler import Candidates, History, RankingHandler
from phoenix.ranker.model import RankerModel
from phoenix.ranker.sids import SidLookup, with_sid_rows
from phoenix.ranker.testing import random_request
from world import WorldConfig, generate_world
from world.sid import rq_kmeans


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return generate_world(WorldConfig.tiny(seed=3))


def test_world_posts_carry_semantic_ids(world) -> None:  # type: ignore[no-untyped-def]
    cfg = world.config
    sids = np.stack(world.posts["sid"].to_list())
    assert sids.shape == (world.posts.height, cfg.sid_levels)
    assert sids.min() >= 1  # every post has a code at every level (0 = missing is never written)
    # level 1 clusters content, and content is mostly topic: clusters are (nearly) topic-pure
    topic = world.posts["topic"].to_numpy()
    pure = sum(np.bincount(topic[sids[:, 0] == k]).max() for k in np.unique(sids[:, 0]))
    assert pure / len(topic) > 0.9
    # a repost has its source's content
    reposts = world.posts.filter(pl.col("is_retweet"))
    src = world.posts.select(pl.col("post_id").alias("source_post_id"), pl.col("sid").alias("src_sid"))
    joined = reposts.join(src, on="source_post_id")
    assert joined.height > 0 and (joined["sid"] == joined["src_sid"]).all()
    # SIDs come from their own random stream: the rest of the world does not depend on them
    plain = generate_world(cfg.replace(sid_levels=0))
    assert plain.engagements.equals(world.engagements)
    assert plain.posts.drop("sid").equals(world.posts.drop("sid"))


def test_rq_kmeans_residual_levels_refine() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(8, 16))
    x = (centers[rng.integers(0, 8, 4000)] + 0.05 * rng.normal(size=(4000, 16))).astype(np.float32)
    codes = rq_kmeans(x, levels=2, codebook=8, seed=0)
    assert codes.shape == (4000, 2) and codes.min() >= 1 and codes.max() <= 8
    # level 1 recovers the 8 clusters: points of one code are close to each other
    spread = np.mean([x[codes[:, 0] == k].std(0).mean() for k in np.unique(codes[:, 0])])
    assert spread < 0.1


def test_sid_lookup() -> None:
    lk = SidLookup(np.array([30, 10, 20]), np.array([[3, 4], [1, 2], [5, 6]]))
    got = lk.lookup(np.array([[10, 0, 99], [20, 30, 10]]), levels=3)
    assert got.shape == (2, 3, 3)
    assert got[0].tolist() == [[1, 2, 0], [0, 0, 0], [0, 0, 0]]  # level 3 absent, 0 = padding, 99 unknown
    assert got[1].tolist() == [[5, 6, 0], [3, 4, 0], [1, 2, 0]]
    assert lk.lookup(np.array([30]), levels=1).tolist() == [[3]]
    frame = pl.DataFrame(
        {"post_id": [7, 8], "sid": [[1, 2], []]}, schema_overrides={"sid": pl.List(pl.Int16)}
    )
    assert SidLookup.from_frame(frame).lookup(np.array([7, 8]), 2).tolist() == [[1, 2], [0, 0]]
    with pytest.raises(ValueError, match="sid"):
        SidLookup.from_frame(pl.DataFrame({"post_id": [1]}))


def test_sid_rows_replace_post_rows_of_known_posts() -> None:
    cfg = RankerConfig.tiny(sid_levels=2, sid_codebook=4)
    base, stride = cfg.hash_config.num_rows, 5
    assert cfg.table_rows == base + 2 * stride
    lk = SidLookup(np.array([7, 8]), np.array([[1, 4], [3, 0]]))
    ids = np.array([[7, 8, 9, 0]])
    hashed = cfg.hash_config.rows(ids, "post")
    rows = with_sid_rows(cfg, ids, hashed, lk)
    # slot j = level j; a missing level-2 code leaves that slot empty; unknown post 9 and padding keep
    assert rows[0, 0].tolist() == [base + 1, base + stride + 4]
    assert rows[0, 1].tolist() == [base + 3, 0]
    assert rows[0, 2].tolist() == hashed[0, 2].tolist() and rows[0, 3].tolist() == [0, 0]
    one = RankerConfig.tiny(sid_levels=1, sid_codebook=4)
    assert with_sid_rows(one, ids, hashed, lk)[0, 0].tolist() == [base + 1, base + stride + 1]
    assert with_sid_rows(RankerConfig.tiny(sid_levels=0), ids, hashed, lk) is hashed


def test_model_sees_sids_and_keeps_candidate_isolation() -> None:
    torch.manual_seed(0)
    cfg = RankerConfig.tiny()
    model = RankerModel(cfg).eval()
    b, _, _ = random_request(cfg, [7], 6, seed=2)
    first_sid = cfg.hash_config.num_rows
    assert (b.cand_post_rows >= first_sid).all() and (b.hist_post_rows[0, :7] >= first_sid).all()
    with torch.no_grad():
        full, _ = model(b)
        fast, _ = model.forward_fast(b)
        # other SIDs for candidates 1.. never change candidate 0's scores
        other = b.cand_post_rows.clone()
        other[0, 1:] = first_sid + 1 + (other[0, 1:] - first_sid) % cfg.sid_codebook
        moved, _ = model(replace(b, cand_post_rows=other))
        # the exposure stage hides post ids but keeps SIDs
        hidden, _ = model(b, authors_only=True)
        hidden_moved, _ = model(replace(b, cand_post_rows=other), authors_only=True)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(moved[0, 0], full[0, 0], atol=1e-6, rtol=1e-6)
    assert (moved[0, 1:] - full[0, 1:]).abs().max() > 1e-4
    assert (hidden_moved[0, 1:] - hidden[0, 1:]).abs().max() > 1e-4


def test_handler_hydrates_sids_by_post_id() -> None:
    torch.manual_seed(0)
    cfg = RankerConfig.tiny()
    model = RankerModel(cfg).eval()
    hist_posts = np.array([11, 12, 13])
    cand_posts = np.array([21, 22])
    codes = np.arange(1, 5 * cfg.sid_levels + 1).reshape(5, cfg.sid_levels) % cfg.sid_codebook + 1
    lookup = SidLookup(np.r_[hist_posts, cand_posts], codes)
    history = History(
        hist_posts, np.array([5, 6, 5]), np.zeros(3, np.uint64), np.ones(3, np.int64), np.zeros(3)
    )
    cands = Candidates(cand_posts, np.array([5, 7]), np.ones(2, np.int64))
    with_sids, _ = RankingHandler(model, "v", sids=lookup).predict(42, history, cands)
    without, _ = RankingHandler(model, "v").predict(42, history, cands)
    assert with_sids.shape == (2, 64)
    assert np.abs(with_sids - without).max() > 1e-4
