"""The ranker's candidate-age feature: buckets, training batches (age when shown), serving batches
(age now, from the snowflake id), the model reading it, old checkpoints without it, time-matched
(`recent`) negatives and the leave-one-out request time."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from foryou.core.snowflake import make_ids
from phoenix.hashing import HashConfig
from phoenix.holdout import Holdout
from phoenix.leave_one_out import split_leave_one_out
from phoenix.ranker.config import AGE_FUTURE, RankerConfig, age_bucket
from phoenix.ranker.data import ImpressionTable, build_requests, impressions_from_log, make_batch
from phoenix.ranker.features import CandidateArrays, HistoryArrays, build_batch, candidate_ages
from phoenix.ranker.model import RankerModel
from phoenix.ranker.negatives import RECENT_WINDOW_MS, NegativePool, append_negatives
from protos import events_pb2

IMPRESSION = events_pb2.ActionName.IMPRESSION
MIN = 60_000
HOUR = 3_600_000
T0 = 1_784_000_000_000


def test_age_buckets_hand_computed() -> None:
    ages = np.array([-5 * MIN, 0, 30_000, MIN, 3 * MIN, 2 * HOUR, 20 * HOUR, 6 * 24 * HOUR, 10**13])
    # 2 + floor(log2(1 + minutes)): 0 min -> 2, 0.5 -> 2, 1 -> 3, 3 -> 4, 120 -> 8, 1200 -> 12
    expected = np.array([AGE_FUTURE, 2, 2, 3, 4, 8, 12, 15, 15])
    np.testing.assert_array_equal(age_bucket(ages, 16), expected)
    assert age_bucket(ages).dtype == np.int64


def _log() -> pl.DataFrame:
    """User 1 is shown two posts created 2 h / 20 h before; user 2 one post 10 min old."""
    post_a, post_b, post_c = make_ids(np.array([T0 - 2 * HOUR, T0 - 20 * HOUR, T0 + 50 * MIN]))
    rows = [(1, post_a, T0), (1, post_b, T0 + MIN), (2, post_c, T0 + HOUR)]
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "post_id": [int(r[1]) for r in rows],
            "author_id": [7, 8, 9],
            "action": [1, 1, 1],
            "timestamp_ms": [r[2] for r in rows],
            "product_surface": 1,
            "dwell_ms": 0,
        }
    )


def _table() -> ImpressionTable:
    return ImpressionTable.build(impressions_from_log(_log()), HashConfig(50, 50, 50), Holdout("none", 0.0))


def test_training_batch_ages_each_candidate_when_it_was_shown() -> None:
    t = _table()
    req = build_requests(t, history_len=4, max_candidates=8, session_gap_ms=HOUR)
    tb = make_batch(t, req, np.arange(len(req)))
    assert tb.batch.cand_age is not None
    assert tb.batch.cand_age.shape == tb.batch.cand_surface.shape == (2, 2)
    # user 1: 2 h old at T0 -> bucket 8; 20 h + 1 min old -> 12; user 2: 10 min -> 5, padding 0
    assert tb.batch.cand_age.tolist() == [[8, 12], [5, 0]]
    assert tb.request_ms is not None and tb.request_ms.tolist() == [T0, T0 + HOUR]


def test_sampled_negatives_are_aged_at_the_request_time() -> None:
    t = _table()
    req = build_requests(t, history_len=4, max_candidates=8, session_gap_ms=HOUR)
    tb = make_batch(t, req, np.arange(len(req)))
    pool = NegativePool.build(t, np.ones(len(t), bool), "uniform")
    neg = np.array([[int(np.flatnonzero(pool.post_ids == t.post_id[2])[0])], [-1]])  # user 1 gets post c
    out = append_negatives(tb, pool, neg)
    assert out.batch.cand_age is not None and out.batch.cand_age.shape == (2, 3)
    # post c is created 50 min after user 1's request: the "future" bucket; no negative -> 0
    assert out.batch.cand_age[:, 2].tolist() == [AGE_FUTURE, 0]


def test_serving_batch_ages_from_the_snowflake_id() -> None:
    ids = make_ids(np.array([T0 - 2 * HOUR, T0 - 3 * MIN]))
    np.testing.assert_array_equal(candidate_ages(np.r_[ids, 0], T0), [8, 4, 0])
    cfg = RankerConfig.tiny()
    hist = HistoryArrays.single(
        3, ids[:1], np.array([5]), np.array([2], np.uint64), np.array([1]), np.array([0]), 4
    )
    cand = CandidateArrays(ids[None], np.array([[5, 6]]), np.array([[1, 1]]))
    b = build_batch(cfg.hash_config, hist, cand, model=cfg, now_ms=T0)
    assert b.cand_age is not None and b.cand_age.tolist() == [[8, 4]]
    assert build_batch(cfg.hash_config, hist, cand, model=cfg).cand_age is None


def test_model_reads_the_age_and_old_configs_have_none() -> None:
    torch.manual_seed(0)
    cfg = RankerConfig.tiny()
    assert cfg.age_buckets == 16
    model = RankerModel(cfg).eval()
    assert model.candidate_tokens.age_emb is not None
    with torch.no_grad():
        model.candidate_tokens.age_emb.weight[1:].normal_()  # trained rows (row 0 stays "unknown")
    ids = make_ids(np.array([T0 - 2 * HOUR, T0 - 3 * MIN]))
    hist = HistoryArrays.single(
        3, ids[:1], np.array([5]), np.array([2], np.uint64), np.array([1]), np.array([0]), 4
    )
    cand = CandidateArrays(np.tile(ids[:1], 2)[None], np.array([[5, 5]]), np.array([[1, 1]]))
    b = build_batch(cfg.hash_config, hist, cand, model=cfg)
    b.cand_age = torch.tensor([[8, 4]])  # the same post at two ages
    with torch.no_grad():
        slow, _ = model(b)
        fast, _ = model.forward_fast(b)
    assert slow.shape == (1, 2, 64)
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)
    assert (slow[0, 0] - slow[0, 1]).abs().max() > 1e-3  # the age changes the scores
    b.cand_age = None  # unknown age = bucket 0, a zero embedding
    with torch.no_grad():
        unknown, _ = model(b)
    torch.testing.assert_close(unknown[0, 0], unknown[0, 1])
    old = RankerConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "age_buckets"})
    assert old.age_buckets == 0 and RankerModel(old).candidate_tokens.age_emb is None


def test_recent_negatives_come_from_the_window_before_the_request() -> None:
    n, rng = 400, np.random.default_rng(0)
    ts = T0 + np.sort(rng.integers(0, 100 * HOUR, n))
    df = pl.DataFrame(
        {
            "user_id": np.arange(n) % 40 + 1,
            "post_id": np.arange(n) + 1,
            "author_id": 1,
            "action": 1,
            "timestamp_ms": ts,
            "product_surface": 1,
            "dwell_ms": 0,
        }
    )
    t = ImpressionTable.build(impressions_from_log(df), HashConfig(50, 500, 50), Holdout("none", 0.0))
    pool = NegativePool.build(t, np.ones(len(t), bool), "recent")
    users = np.full(200, 1_000)  # a user with no impressions: nothing is excluded
    request = np.full(200, T0 + 80 * HOUR)
    neg = pool.sample(users, 8, np.random.default_rng(1), request)
    assert neg.shape == (200, 8)
    shown = dict(zip(t.post_id.tolist(), t.timestamp_ms.tolist(), strict=True))
    times = np.array([shown[int(pool.post_ids[i])] for i in neg.ravel() if i >= 0])
    in_window = (times > request[0] - RECENT_WINDOW_MS) & (times <= request[0])
    # half time-matched (+ popularity draws that land in the window: ~24 of 100 h)
    assert 0.5 < in_window.mean() < 0.75
    # without the request times it falls back to popularity draws over the whole pool
    spread = pool.sample(users, 8, np.random.default_rng(1))
    times = np.array([shown[int(pool.post_ids[i])] for i in spread.ravel() if i >= 0])
    assert ((times > request[0] - RECENT_WINDOW_MS) & (times <= request[0])).mean() < 0.4


def test_leave_one_out_test_time_is_the_test_posts_impression() -> None:
    # user 1: impression of post 2 at 100, favorite (action 1) at 130 -> test row time 100
    df = pl.DataFrame(
        {
            "user_id": [1, 1, 1, 1],
            "post_id": [1, 1, 2, 2],
            "author_id": [5, 5, 6, 6],
            "action": [IMPRESSION, 1, IMPRESSION, 1],
            "timestamp_ms": [10, 20, 100, 130],
            "product_surface": 1,
            "dwell_ms": 0,
        }
    )
    train, test = split_leave_one_out(df)
    assert test.select("user_id", "post_id", "timestamp_ms").rows() == [(1, 2, 100)]
    assert train["timestamp_ms"].to_list() == [10, 20]
