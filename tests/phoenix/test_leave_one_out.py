"""Leave-one-out metrics on a hand-computed case, the split, and the two-stage re-ranking."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from phoenix.leave_one_out import positives_only, split_leave_one_out, top_m, two_stage
from phoenix.ranking_metrics import rank_metrics, target_ranks


def test_hr_ndcg_mrr_hand_computed() -> None:
    scores = np.array(
        [
            [0.9, 0.5, 0.7, 0.1, 0.3],  # target 2; item 0 (0.9) is history -> rank 1
            [0.2, 0.8, 0.4, 0.6, 0.0],  # target 3; only item 1 is above -> rank 2
            [0.5, 0.5, 0.5, 0.5, 0.5],  # constant: ties count against the target -> rank 5
        ]
    )
    ranks = target_ranks(scores, np.array([2, 3, 4]), [np.array([0]), np.array([]), np.array([], int)])
    assert ranks.tolist() == [1, 2, 5]
    m = rank_metrics(ranks, ks=(1, 2))
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["hr@2"] == pytest.approx(2 / 3)
    assert m["ndcg@2"] == pytest.approx((1.0 + 1.0 / math.log2(3)) / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 5) / 3)


def test_target_in_history_is_still_ranked() -> None:
    ranks = target_ranks(np.array([[0.1, 0.9, 0.5]]), np.array([2]), [np.array([1, 2])])
    assert ranks.tolist() == [1]  # item 1 removed, the target itself never is


def _log(rows: list[tuple[int, int, int, int]]) -> pl.DataFrame:
    u, p, a, t = zip(*rows, strict=True)
    return pl.DataFrame(
        {"user_id": u, "post_id": p, "author_id": [x + 100 for x in p], "action": a, "timestamp_ms": t},
        schema_overrides={"action": pl.Int64},
    )


def test_split_holds_out_last_positive_and_cuts_later_rows() -> None:
    log = _log(
        [
            (1, 10, 1000, 1), (1, 10, 1, 2),  # positive
            (1, 11, 1000, 3), (1, 11, 12, 3),  # impression, not dwelled
            (1, 12, 1000, 5), (1, 12, 1, 6),  # last positive: the test item
            (1, 13, 1000, 7),  # after the test item: cut
            (2, 20, 1000, 1), (2, 20, 1, 2),  # one positive only: no test row, kept for training
        ]
    )  # fmt: skip
    train, test = split_leave_one_out(log)
    assert test.select("user_id", "post_id").rows() == [(1, 12)]
    assert sorted(set(train.filter(pl.col("user_id") == 1)["post_id"])) == [10, 11]
    assert train.filter(pl.col("user_id") == 2).height == 2
    assert positives_only(train)["action"].to_list() == [1, 1]


def test_two_stage_reorders_only_the_top() -> None:
    first = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    top = top_m(first, [np.array([0])], 2)  # item 0 is history: top 2 = items 1, 2
    assert sorted(top[0].tolist()) == [1, 2]
    second = np.where(top == 2, 1.0, 0.0)  # the ranker prefers item 2
    out = two_stage(first, second, top)
    order = np.argsort(-out[0]).tolist()
    assert order[:2] == [2, 1]
    assert order[2:] == [0, 3, 4]  # the rest keep the first stage's order, below the top


def test_paired_difference_hand_computed() -> None:
    from phoenix.ranking_metrics import paired_difference

    # A hits at ranks 1 and 3, B at rank 3 only: HR@10 difference (1 + 0 + 0) / 3
    d = paired_difference(np.array([1, 3, 50]), np.array([50, 3, 60]), k=10)
    assert np.isclose(d["hr@10"], 1 / 3)
    assert np.isclose(d["ndcg@10"], 1.0 / 3)  # 1/log2(2) on case 1, 0 on the others
    assert d["hr@10_lo"] <= d["hr@10"] <= d["hr@10_hi"]
    # identical rankers: no difference, a zero-width interval
    same = paired_difference(np.array([1, 20, 4]), np.array([1, 20, 4]))
    assert same["hr@10"] == same["hr@10_lo"] == same["hr@10_hi"] == 0.0
    with pytest.raises(ValueError):
        paired_difference(np.array([1]), np.array([1, 2]))


def test_evaluate_loo_pools_and_history_ablation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """End to end on seeded untrained tiny models: both candidate pools (retrieval's top, newest
    first), every ablation variant, paired history gains; newest-first finds a target that is
    the newest post created before its request, and never ranks posts created after it."""
    import torch

    from foryou.core.snowflake import make_id
    from phoenix.leave_one_out import ABLATIONS, evaluate_loo
    from phoenix.ranker.checkpoint import save_model
    from phoenix.ranker.config import RankerConfig
    from phoenix.ranker.model import RankerModel
    from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, save_two_tower

    t0 = 1_784_592_000_000
    posts = [make_id(t0 + 60_000 * i, i) for i in range(40)]  # post i created at minute i
    rows, tests = [], []
    for u in range(1, 7):
        for i in range(u, u + 20):  # user u saw posts u..u+19, favorited every other one
            rows.append((u, posts[i], 100 + i % 4, "impression", t0 + 60_000 * 30))
            if i % 2 == 0:
                rows.append((u, posts[i], 100 + i % 4, "favorite", t0 + 60_000 * 30 + 1))
        # test: post 35, requested at minute 36 (posts 36..39 do not exist yet)
        tests.append((u, posts[35], 100 + 35 % 4, t0 + 60_000 * 36))
    u, p, a, act, ts = zip(*rows, strict=True)
    pl.DataFrame(
        {"user_id": u, "post_id": p, "author_id": a, "action": act, "timestamp_ms": ts}
    ).write_parquet(tmp_path / "engagements.parquet")
    u, p, a, ts = zip(*tests, strict=True)
    pl.DataFrame({"user_id": u, "post_id": p, "author_id": a, "timestamp_ms": ts}).write_parquet(
        tmp_path / "test.parquet"
    )
    torch.manual_seed(0)
    save_two_tower(tmp_path / "ret", TwoTowerModel(TwoTowerConfig.tiny()))
    save_model(tmp_path / "rnk", RankerModel(RankerConfig.tiny()))
    res = evaluate_loo(tmp_path, tmp_path / "test.parquet", tmp_path / "ret", tmp_path / "rnk", rerank=10)
    assert res["newest first"]["mrr"] == 1.0  # type: ignore[index]
    for pool in ("retrieval", "newest"):
        for k in ABLATIONS:
            m = res[f"{pool}+ranker{f' ({k})' if k else ''}"]
            assert isinstance(m, dict) and m["test_cases"] == 6
    for key in ("history_gain_vs_empty", "history_gain_without_user_id", "newest_history_gain_vs_empty"):
        g = res[key]
        assert isinstance(g, dict) and g["hr@10_lo"] <= g["hr@10"] <= g["hr@10_hi"]
