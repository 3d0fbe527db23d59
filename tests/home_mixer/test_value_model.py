"""The Oct-7 value-model path (issue 19) on the reference sheet's numbers: the local weighted score
with the October weights (dwell, click-dwell, mutual-follow reply boost, VQV viewer gate), the
OON factor for new viewers, the new-author cold start (Thompson sampling) and the DPP re-rank."""

from __future__ import annotations

import asyncio
import inspect
import math
from types import SimpleNamespace

import numpy as np
import pytest

from foryou.core.snowflake import make_id
from home_mixer.candidate_hydrators.bidirectional_follow_hydrator import BidirectionalFollowHydrator
from home_mixer.candidate_hydrators.engagement_counts_hydrator import EngagementCountsHydrator
from home_mixer.embeddings import fallback_embedding, text_embedding
from home_mixer.params import ACTION_HEADS, Params
from home_mixer.query import UserFeatures
from home_mixer.scorers.author_cold_start_scorer import AuthorColdStartScorer, beta_posterior
from home_mixer.scorers.author_diversity_scorer import AuthorDiversityScorer
from home_mixer.scorers.oon_scorer import OONScorer, oon_factor
from home_mixer.scorers.weighted_scorer import WeightedScorer
from home_mixer.selectors.dpp_selector import DppSelector, dpp_alpha, greedy_map


def run(component, q, cands):  # type: ignore[no-untyped-def]
    results = component.hydrate(q, cands)
    if inspect.isawaitable(results):
        results = asyncio.run(results)
    component.update_all(cands, results)
    return cands


def vm(q, cands):  # type: ignore[no-untyped-def]
    """The scorers after the ranker, in pipeline order."""
    for s in (WeightedScorer(), AuthorColdStartScorer(), AuthorDiversityScorer(), OONScorer()):
        run(s, q, cands)
    return cands


HEADS = {
    "favorite": 0.2,
    "reply": 0.05,
    "retweet": 0.01,
    "click": 0.1,
    "dwell": 0.6,
    "video_open": 0.3,
    "not_interested": 0.002,
    "dwell_time": 8.0,
    "click_dwell_time": 3.0,
}


def test_value_model_score_by_hand_with_october_weights(fakes: SimpleNamespace) -> None:
    """Σ = 0.5·0.2 + W_reply·0.05 + 1·0.01 + 0.3·0.1 + 0.05·0.6 + 0.07·0.3 − 47.52·0.002
    + 0.004·8 + 0.4·3, W_reply = 5 + 15 for a mutual follow's original, else 5; + 0.001 offset."""
    mutual = fakes.cand(1, 10, phoenix_scores=dict(HEADS), in_network=True, is_mutual_follow_author=True)
    reply = fakes.cand(
        2,
        10,
        phoenix_scores=dict(HEADS),
        in_network=True,
        is_mutual_follow_author=True,
        in_reply_to_post_id=7,
    )
    repost = fakes.cand(
        3, 10, phoenix_scores=dict(HEADS), in_network=True, is_mutual_follow_author=True, retweeted_post_id=7
    )
    plain = fakes.cand(4, 10, phoenix_scores=dict(HEADS), in_network=True, is_mutual_follow_author=False)
    run(WeightedScorer(), fakes.query(), [mutual, reply, repost, plain])
    # 0.1 + 1.0 + 0.01 + 0.03 + 0.03 + 0.021 − 0.09504 + 0.032 + 1.2 = 2.32796
    assert mutual.weighted_score == pytest.approx(2.32896)
    # reply weight 5: 0.75 less
    for c in (reply, repost, plain):
        assert c.weighted_score == pytest.approx(1.57896)


def test_value_model_crate_hand_computed_parity(fakes: SimpleNamespace) -> None:
    """The `xai-value-model` test `hand_computed_parity` (sheet §2.3): weights fav 2, reply 4,
    repost 1, dwell 0.5, vqv 3, dwell_time 0.1, click_dwell 0.2, post_unexplored 1.5, report −100,
    not_interested −10, reply boost 1, dwell boost 0.5, OON 0.75 (PosSum 12, NegSum 110)."""
    zero = {f"{h}_weight": 0.0 for h in ACTION_HEADS}
    p = Params(
        **{
            **zero,
            "favorite_weight": 2.0,
            "reply_weight": 4.0,
            "retweet_weight": 1.0,
            "dwell_weight": 0.5,
            "vqv_weight": 3.0,
            "post_unexplored_weight": 1.5,
            "report_weight": -100.0,
            "not_interested_weight": -10.0,
        },
        cont_dwell_time_weight=0.1,
        cont_click_dwell_time_weight=0.2,
        bidirectional_follow_reply_weight_boost=1.0,
        bidirectional_follow_dwell_weight_boost=0.5,
    )
    assert p.weight_sums() == pytest.approx((12.0, 110.0, 122.0))
    heads = {"favorite": 0.5, "reply": 0.1, "dwell": 0.4, "dwell_time": 10.0, "post_unexplored": 0.2}
    original = fakes.cand(1, 10, phoenix_scores=heads, in_network=True, is_mutual_follow_author=True)
    second = fakes.cand(2, 10, phoenix_scores={"favorite": 0.1}, in_network=True)
    reply = fakes.cand(
        3, 11, phoenix_scores={"favorite": 0.01, "report": 0.05}, in_network=True, in_reply_to_post_id=1
    )
    vm(fakes.query(params=p), [original, second, reply])
    # 2·0.5 + (4+1)·0.1 + (0.5+0.5)·0.4 + 0.1·10 + 1.5·0.2 + 0.001
    assert original.score == pytest.approx(3.201)
    assert second.score == pytest.approx((2 * 0.1 + 0.001) * 0.625)  # same author, second
    assert reply.score == pytest.approx(((0.02 - 5) + 110) / 122 * 0.001 * 0.75)  # in-network reply


def test_vqv_viewer_gate(fakes: SimpleNamespace) -> None:
    """Home-mixer's local VQV weight: a video over 10 s AND a viewer with < 10,000 followers."""
    p = Params(vqv_weight=0.05)

    def score(followers: int | None, duration: int) -> float:
        c = fakes.cand(1, 10, phoenix_scores={"vqv": 1.0}, video_duration_ms=duration, in_network=True)
        q = fakes.query(params=p, user_features=UserFeatures(viewer_followers_count=followers))
        run(WeightedScorer(), q, [c])
        return float(c.weighted_score)

    assert score(9_999, 10_001) == pytest.approx(0.051)
    assert score(None, 10_001) == pytest.approx(0.051)  # unknown: the gate passes
    assert score(10_000, 10_001) == pytest.approx(0.001)
    assert score(9_999, 10_000) == pytest.approx(0.001)


def test_new_viewer_oon_factor(fakes: SimpleNamespace) -> None:
    """A viewer account younger than NewUserAgeThresholdSecs that follows at least 5 accounts gets
    the 0.00001 factor; the default threshold 0 makes no viewer new; sequential ids have no age."""
    young = make_id(fakes.NOW_MS - 100_000)  # a snowflake user id created 100 s ago
    five = UserFeatures(following=frozenset(range(100, 105)))
    on = Params(new_user_age_threshold_s=3_600)
    assert oon_factor(fakes.query(young, params=on, user_features=five)) == 0.00001
    four = UserFeatures(following=frozenset(range(100, 104)))
    assert oon_factor(fakes.query(young, params=on, user_features=four)) == 0.75
    assert oon_factor(fakes.query(young, user_features=five)) == 0.75  # default threshold 0
    assert oon_factor(fakes.query(7, params=on, user_features=five)) == 0.75  # not a snowflake
    c = fakes.cand(1, 50, score=2.0, in_network=False)
    run(OONScorer(), fakes.query(young, params=on, user_features=five), [c])
    assert c.score == pytest.approx(2.0 * 0.00001)


def test_bidirectional_follow_hydrator(fakes: SimpleNamespace) -> None:
    store = fakes.UserState()
    store.followers[1] = {10, 50}  # 10 and 50 follow the viewer; the viewer follows 10 and 11
    q = fakes.query(user_features=UserFeatures(following=frozenset({10, 11})))
    cs = [fakes.cand(1, 10), fakes.cand(2, 11), fakes.cand(3, 50)]
    run(BidirectionalFollowHydrator(store), q, cs)
    assert [c.is_mutual_follow_author for c in cs] == [True, False, False]
    store.fail = True
    with pytest.raises(ConnectionError):  # the pipeline fails it open: fields stay None, no boost
        asyncio.run(BidirectionalFollowHydrator(store).hydrate(q, cs))


def test_engagement_counts_hydrator_reads_the_original(fakes: SimpleNamespace) -> None:
    store = fakes.UserState()
    store.counts = {1: (150, 3), 7: (20, 1)}
    cs = [fakes.cand(1, 10), fakes.cand(2, 10, retweeted_post_id=7), fakes.cand(3, 10)]
    run(EngagementCountsHydrator(store), fakes.query(), cs)
    assert [(c.view_count_on_home, c.fav_count) for c in cs] == [(150, 3), (20, 1), (None, None)]


# --- cold start -------------------------------------------------------------------------------


def test_cold_start_beta_prior() -> None:
    """Beta(0.75, 49.25): mean 0.015 over 50 pseudo-impressions; favs out of views update it."""
    p = Params()
    c = SimpleNamespace(view_count_on_home=None, fav_count=None)
    a, b = beta_posterior(c, p)  # type: ignore[arg-type]
    assert (a, b) == (0.75, 49.25) and a / (a + b) == pytest.approx(0.015) and a + b == 50
    c = SimpleNamespace(view_count_on_home=100, fav_count=3)
    assert beta_posterior(c, p) == (3.75, 146.25)  # type: ignore[arg-type]
    c = SimpleNamespace(view_count_on_home=2, fav_count=5)  # favs capped at views
    assert beta_posterior(c, p) == (2.75, 49.25)  # type: ignore[arg-type]
    draws = np.random.default_rng(0).beta(0.75, 49.25, 20_000)
    assert draws.mean() == pytest.approx(0.015, rel=0.05)


def _cold_start_feed(fakes: SimpleNamespace, n: int = 20, **eligible_kw: object) -> list:  # type: ignore[type-arg]
    """n candidates with weighted scores n..1 by established authors; the one at 0-based rank 17
    (score 3) is a new author's fresh original, unless `eligible_kw` spoils it."""
    out = []
    for i in range(n):
        c = fakes.cand(
            fakes.pid(age_s=30_000, seq=i), 100 + i, weighted_score=float(n - i), author_followers_count=10**6
        )
        out.append(c)
    kw: dict[str, object] = {"author_followers_count": 40, "view_count_on_home": 30, "fav_count": 1}
    kw.update(eligible_kw)
    new = fakes.cand(fakes.pid(age_s=kw.pop("age_s", 1_800), seq=99), 7, weighted_score=3.0, **kw)  # type: ignore[arg-type]
    out[17] = new
    return out


def test_cold_start_lifts_one_new_author_post_to_the_16th_best(fakes: SimpleNamespace) -> None:
    cs = _cold_start_feed(fakes)
    run(AuthorColdStartScorer(), fakes.query(rng_seed=1), cs)
    new = cs[17]
    # target = sorted scores[15] = 20 − 15 = 5
    assert new.score == new.local_score == 5.0 and new.cold_start_lift_rank == 15
    assert ("AuthorColdStartScorer", pytest.approx(5.0 / 3.0)) in new.multipliers
    assert all(c.score == c.weighted_score and c.cold_start_lift_rank is None for c in cs if c is not new)


@pytest.mark.parametrize(
    "spoil",
    [
        {"in_reply_to_post_id": 5},
        {"retweeted_post_id": 5},
        {"author_followers_count": 50_001},
        {"author_followers_count": None},
        {"age_s": 7_300},
        {"view_count_on_home": 200},
        {"view_count_on_home": None},
    ],
)
def test_cold_start_eligibility(fakes: SimpleNamespace, spoil: dict) -> None:  # type: ignore[type-arg]
    cs = _cold_start_feed(fakes, **spoil)
    run(AuthorColdStartScorer(), fakes.query(rng_seed=1), cs)
    assert cs[17].score == 3.0 and cs[17].cold_start_lift_rank is None


def test_cold_start_needs_16_candidates_and_the_top_97_percent(fakes: SimpleNamespace) -> None:
    cs = _cold_start_feed(fakes, n=20)[:15]
    cs[10] = _cold_start_feed(fakes)[17]
    run(AuthorColdStartScorer(), fakes.query(rng_seed=1), cs)
    assert all(c.cold_start_lift_rank is None for c in cs)
    # 0-based position 19 of 20 non-zero scores is not within floor(0.97 × 20) = 19
    cs = _cold_start_feed(fakes)
    cs[17].weighted_score, cs[19].weighted_score = 1.0, 3.0
    cs[17], cs[19] = cs[19], cs[17]
    run(AuthorColdStartScorer(), fakes.query(rng_seed=1), cs)
    assert all(c.cold_start_lift_rank is None for c in cs)


def test_cold_start_thompson_sampling_is_seeded_and_picks_from_the_top_two(fakes: SimpleNamespace) -> None:
    """Three eligible posts: B (best score), A (middle score, 30 favs in 150 views), C (lowest).
    θ keeps A (high rate) and one of B/C; the best score among the two wins, so C is never lifted
    and B and A both are, depending on the draw. The same seed gives the same pick."""

    def feed() -> list:  # type: ignore[type-arg]
        cs = _cold_start_feed(fakes)
        for i, (score, views, favs) in zip(
            (16, 17, 18), ((4.0, 150, 0), (3.0, 150, 30), (2.5, 150, 0)), strict=True
        ):
            cs[i] = fakes.cand(
                fakes.pid(age_s=600, seq=200 + i),
                300 + i,
                weighted_score=score,
                author_followers_count=10,
                view_count_on_home=views,
                fav_count=favs,
            )
        return cs

    picks = []
    for seed in range(60):
        cs = feed()
        run(AuthorColdStartScorer(), fakes.query(rng_seed=seed), cs)
        picks.append([i for i, c in enumerate(cs) if c.cold_start_lift_rank is not None])
    assert all(len(p) == 1 for p in picks)
    counts = {i: sum(p == [i] for p in picks) for i in (16, 17, 18)}
    assert counts[18] == 0 and counts[16] > 0 and counts[17] > 0
    again = feed()
    run(AuthorColdStartScorer(), fakes.query(rng_seed=5), again)
    assert [i for i, c in enumerate(again) if c.cold_start_lift_rank is not None] == picks[5]
    off = feed()
    run(
        AuthorColdStartScorer(),
        fakes.query(rng_seed=5, params=Params(enable_cold_start_thompson_sampling=False)),
        off,
    )
    assert off[16].cold_start_lift_rank == 15  # argmax by score


# --- DPP ----------------------------------------------------------------------------------------


def test_dpp_three_posts_by_hand() -> None:
    """θ = 0.65: α = 0.65 / (2 · 0.35) = 0.928571. Scores 1.0, 0.9, 0.5 (s_max 1.0):
    q = e^0.928571 = 2.53089, e^0.835714 = 2.30646, e^0.464286 = 1.59088.
    Embeddings e1 = [1, 0], e2 = [0.8, 0.6], e3 = [0, 1]: cos12 = 0.8, cos13 = 0, cos23 = 0.6.
    Pick 1 (largest L11 = q1² = 6.40541). Residuals: d2 = q2² (1 − 0.8²) = 5.31976 · 0.36 = 1.91511,
    d3 = q3² (1 − 0) = 2.53089: pick 3, although post 2 scores higher. Then d2 = 1.91511 − (0.6 q2)²
    = 0 ≤ 1e-6: rank exhausted, so even with top-K 3 post 2 is not picked."""
    alpha = dpp_alpha(0.65)
    assert alpha == pytest.approx(0.928571, abs=1e-6)
    q = np.exp(alpha * np.array([1.0, 0.9, 0.5]))
    assert q == pytest.approx([2.53089, 2.30646, 1.59088], abs=1e-5)
    emb = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    assert greedy_map(q, emb, 2) == [0, 2]
    assert greedy_map(q, emb, 3) == [0, 2]
    # without the diversity term (orthogonal embeddings) the order is plain score order
    assert greedy_map(q, np.eye(3), 3) == [0, 1, 2]


def test_dpp_reference_cases() -> None:
    """`dpp.rs` tests: three identical embeddings keep only the top one; [1,0]@10, [1,0]@9.5,
    [0,1]@5 picks the first and third; a pool limit of 10 of 100 picks only from the top 10."""
    a = dpp_alpha(0.65)
    q = np.exp(a * np.array([10, 5, 1]) / 10)
    assert greedy_map(q, np.ones((3, 4)), 3) == [0]
    q = np.exp(a * np.array([10, 9.5, 5]) / 10)
    assert greedy_map(q, np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), 3) == [0, 2]


def test_dpp_selector_drops_a_near_duplicate_and_shows_the_move(fakes: SimpleNamespace) -> None:
    cs = [
        fakes.cand(1, 10, score=1.0, text="red apples"),
        fakes.cand(2, 11, score=0.95, text="red apples"),
        fakes.cand(3, 12, score=0.5, text="blue sky"),
    ]
    selected, rest = DppSelector().select(fakes.query(), cs)
    assert [c.post_id for c in selected] == [1, 3, 2]  # post 2: score 0, kept in pipeline order
    assert [c.rank_before_dpp for c in cs] == [0, 1, 2] and rest == []
    assert [c.dpp_selected for c in cs] == [True, False, True]
    assert cs[1].score == 0.0 and cs[1].multipliers == [("DppSelector", 0.0)]
    assert cs[2].score == 0.5  # DPP only selects: scores are unchanged


def test_dpp_pool_is_the_top_max_selected_rank(fakes: SimpleNamespace) -> None:
    cs = [fakes.cand(i + 1, 10 + i, score=100.0 - i, text=f"topic{i}") for i in range(30)]
    q = fakes.query(params=Params(dpp_max_selected_rank=10, dpp_top_k=50, top_k_candidates_to_select=30))
    selected, _ = DppSelector().select(q, cs)
    assert sum(c.score > 0 for c in cs) == 10  # past rank 10: score 0
    assert [c.post_id for c in selected[:10]] == list(range(1, 11))
    assert cs[12].rank_before_dpp is None and cs[12].score == 0.0


def test_text_embedding() -> None:
    a = text_embedding("RT @bob: Red apples 2", 1, 256)
    b = text_embedding("red apples 2 @alice", 2, 256)
    assert float(a @ b) == pytest.approx(1.0) and float(np.linalg.norm(a)) == pytest.approx(1.0)
    media = text_embedding("", 5, 256)  # media-only: the deterministic fallback vector
    assert media == pytest.approx(fallback_embedding(5, 256)) and abs(float(media @ a)) < 0.3
    assert not math.isclose(float(fallback_embedding(6, 256) @ media), 1.0)


def test_dpp_failure_falls_back_to_local_scores(
    fakes: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing DPP step (like a failed vm-ranker call) serves every candidate its local score:
    the diversity and OON multipliers are dropped and the request is marked."""
    cs = [
        fakes.cand(i + 1, 10, phoenix_scores={"favorite": 0.1 * (i + 1)}, in_network=False) for i in range(3)
    ]
    q = fakes.query()
    vm(q, cs)
    assert cs[1].score == pytest.approx((0.2 * 0.5 + 0.001) * 0.625 * 0.75)

    def broken(*a: object) -> None:
        raise RuntimeError("embedding store down")

    monkeypatch.setattr("home_mixer.selectors.dpp_selector.text_embedding", broken)
    selected, _ = DppSelector().select(q, cs)
    assert q.value_model_failed is not None and "embedding store down" in q.value_model_failed
    assert [c.post_id for c in selected] == [3, 2, 1]
    assert [c.score for c in selected] == [c.weighted_score for c in selected]
    assert all(c.multipliers == [] and c.dpp_selected is None for c in cs)
