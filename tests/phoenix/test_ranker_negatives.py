"""Sampled negatives never hit a user's own posts; the listwise loss ranks positives above negatives."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from phoenix.hashing import HashConfig
from phoenix.holdout import Holdout
from phoenix.ranker.config import NUM_ACTIONS, RankerConfig, TrainConfig
from phoenix.ranker.data import ImpressionTable, build_requests, impressions_from_log, make_batch
from phoenix.ranker.negatives import NegativePool, append_negatives
from phoenix.ranker.train import listwise_loss, train_ranker


def _table(n_users: int = 20, n_posts: int = 30, per_user: int = 12) -> ImpressionTable:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(1, n_users + 1):
        for j, p in enumerate(rng.choice(n_posts, per_user, replace=False) + 1):
            rows.append((u, int(p), int(p) % 7 + 1, 1, 1000 * u + j))
    u, p, a, act, t = zip(*rows, strict=True)
    df = pl.DataFrame(
        {
            "user_id": u,
            "post_id": p,
            "author_id": a,
            "action": act,
            "timestamp_ms": t,
            "product_surface": 1,
            "dwell_ms": 0,
        }
    )
    return ImpressionTable.build(impressions_from_log(df), HashConfig(100, 100, 100), Holdout("last", 1))


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_negatives_are_never_the_users_posts(distribution: str) -> None:
    t = _table()
    pool = NegativePool.build(t, ~t.is_eval, distribution)
    users = np.repeat(np.unique(t.user_id), 5)
    neg = pool.sample(users, 16, np.random.default_rng(1))
    assert neg.shape == (len(users), 16)
    own = {(int(u), int(p)) for u, p in zip(t.user_id, t.post_id, strict=True)}  # held-out ones too
    drawn = [
        (int(u), int(pool.post_ids[i])) for u, row in zip(users, neg, strict=True) for i in row if i >= 0
    ]
    assert len(drawn) > len(users) * 8  # most slots are filled (18 of 30 posts are free per user)
    assert not own & set(drawn)
    for row in neg:  # no post twice in one request
        v = row[row >= 0]
        assert len(np.unique(v)) == len(v)


def test_hard_negatives_come_from_the_users_list_and_skip_positives() -> None:
    t = _table()
    pool = NegativePool.build(t, ~t.is_eval, "uniform")
    hard = np.tile(np.arange(len(pool.post_ids))[:10], (len(pool.users), 1))  # the first 10 posts
    pool.hard = hard
    users = np.unique(t.user_id)
    neg = pool.sample(users, 4, np.random.default_rng(2))
    own = {(int(u), int(p)) for u, p in zip(t.user_id, t.post_id, strict=True)}
    for u, row in zip(users, neg, strict=True):
        for i in row[row >= 0]:
            assert (int(u), int(pool.post_ids[i])) not in own


def test_append_negatives_labels_and_shapes() -> None:
    t = _table()
    req = build_requests(t, history_len=8, max_candidates=4, session_gap_ms=10**9)
    tb = make_batch(t, req, np.arange(3))
    pool = NegativePool.build(t, ~t.is_eval, "uniform")
    neg = np.array([[0, 1, -1], [2, 3, 4], [-1, -1, -1]])
    out = append_negatives(tb, pool, neg)
    c = tb.labels.shape[1]
    assert out.labels.shape == (3, c + 3, NUM_ACTIONS)
    assert out.batch.cand_post_rows.shape == (3, c + 3, 2)
    assert torch.equal(
        out.batch.candidate_valid[:, c:], torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]]).bool()
    )
    assert out.labels[:, c:, 1].sum() == 0 and out.label_mask[0, c, 1] == 1  # favorite: trained as 0
    assert out.label_mask[0, c, 16] == 0  # negative feedback: untrained


def test_listwise_loss_is_softmax_over_the_request() -> None:
    logits = torch.zeros(1, 3, NUM_ACTIONS)
    logits[0, :, 1] = torch.tensor([2.0, 0.0, -1.0])
    labels = torch.zeros(1, 3, NUM_ACTIONS)
    labels[0, 0, 1] = 1.0
    mask = torch.zeros(1, 3, NUM_ACTIONS)
    mask[..., 1] = 1.0
    expected = -torch.log_softmax(torch.tensor([2.0, 0.0, -1.0]), 0)[0]
    assert torch.allclose(listwise_loss(logits, labels, mask), expected)
    logits[0, 0, 1] = 5.0  # a better-ranked positive has a lower loss
    assert listwise_loss(logits, labels, mask) < expected


def test_positives_only_log_trains_with_auto_negatives(tmp_path) -> None:
    t = _table()
    df = pl.DataFrame(
        {
            "user_id": t.user_id,
            "post_id": t.post_id,
            "author_id": t.author_id,
            "action": 1,
            "timestamp_ms": t.timestamp_ms,
        }
    )
    df.write_parquet(tmp_path / "log.parquet")
    cfg = TrainConfig(
        model=RankerConfig.tiny(), max_steps=3, progress=False, eval_every=0, listwise_weight=1.0
    )
    m = train_ranker(tmp_path / "log.parquet", tmp_path / "out", cfg, evaluate=False)
    assert m["positives_only_log"] and m["sampled_negatives"] == 16 and m["exposure_steps"] == 0
    assert np.isfinite(m["final_train_loss_ema"])
