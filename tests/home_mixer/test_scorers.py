"""Scorers and selector: the weighted score (action weights, offset, recency fallback), the author
diversity decay, the out-of-network factor and the top-k order."""

from __future__ import annotations

import asyncio
import inspect
import math
from types import SimpleNamespace

import numpy as np
import pytest

from home_mixer.params import ACTION_HEADS, DEFAULT_PARAMS, Params
from home_mixer.scorers.author_diversity_scorer import AuthorDiversityScorer, diversity_multiplier
from home_mixer.scorers.oon_scorer import OONScorer
from home_mixer.scorers.phoenix_scorer import PhoenixScorer
from home_mixer.scorers.weighted_scorer import WeightedScorer, offset_score
from home_mixer.selectors.top_k_score_selector import TopKScoreSelector
from protos import phoenix_pb2


def run_scorer(scorer, q, cands):  # type: ignore[no-untyped-def]
    results = scorer.score(q, cands)
    if inspect.isawaitable(results):
        results = asyncio.run(results)
    scorer.update_all(cands, results)
    return cands


def test_weight_sums_match_reference() -> None:
    """Oct-7 sheet §2.1: PosSum 43.235, NegSum 371.54, Total 414.775."""
    pos, neg, total = DEFAULT_PARAMS.weight_sums()
    assert pos == pytest.approx(43.235) and neg == pytest.approx(371.54) and total == pytest.approx(414.775)


def test_offset_score_branches() -> None:
    p = DEFAULT_PARAMS
    assert offset_score(2.0, p) == pytest.approx(2.001)
    assert offset_score(0.0, p) == pytest.approx(0.001)
    # negative totals map into [0, 0.001): (x + neg_sum) / total_sum × offset
    assert offset_score(-2.34, p) == pytest.approx((-2.34 + 371.54) / 414.775 * 0.001)
    assert 0 <= offset_score(-371.54, p) < offset_score(-1.0, p) < 0.001
    zero = Params(**{f"{h}_weight": 0.0 for h in p.weights()})
    assert offset_score(-3.0, zero) == 0.0 and offset_score(3.0, zero) == 3.0


def test_weighted_scorer_sum_vqv_gate_and_nan(fakes: SimpleNamespace) -> None:
    scores = {"favorite": 0.2, "reply": 0.1, "vqv": 0.5, "report": 0.001, "dwell_time": 10.0}
    short = fakes.cand(1, 10, phoenix_scores=dict(scores), video_duration_ms=10_000, in_network=True)
    long = fakes.cand(2, 10, phoenix_scores=dict(scores), video_duration_ms=10_001, in_network=True)
    nan = fakes.cand(3, 10, phoenix_scores={**scores, "favorite": float("nan")}, in_network=True)
    # VqvWeight is 0.0 since Oct: the gate is checked with the Aug weight 0.05
    run_scorer(WeightedScorer(), fakes.query(params=Params(vqv_weight=0.05)), [short, long, nan])
    base = 0.2 * 0.5 + 0.1 * 5.0 - 0.001 * 234.0 + 10.0 * 0.004
    assert short.weighted_score == pytest.approx(base + 0.001)  # VQV only above 10 s
    assert long.weighted_score == pytest.approx(base + 0.5 * 0.05 + 0.001)
    assert nan.weighted_score == pytest.approx(base - 0.2 * 0.5 + 0.001)  # NaN counts as missing


def test_weighted_scorer_negative_total_uses_offset(fakes: SimpleNamespace) -> None:
    """Through the scorer: a negative total maps into [0, 0.001), below every non-negative total,
    and a worse total stays lower (order is kept)."""
    bad = fakes.cand(1, 10, phoenix_scores={"favorite": 0.1, "block_author": 0.5}, in_network=True)
    worse = fakes.cand(2, 10, phoenix_scores={"report": 0.5}, in_network=True)
    zero = fakes.cand(3, 10, phoenix_scores={"favorite": 0.0}, in_network=True)
    run_scorer(WeightedScorer(), fakes.query(), [bad, worse, zero])
    total = 0.1 * 0.5 - 0.5 * 31.2
    assert bad.weighted_score == pytest.approx((total + 371.54) / 414.775 * 0.001)
    assert 0 <= worse.weighted_score < bad.weighted_score < zero.weighted_score == pytest.approx(0.001)


def test_weighted_scorer_post_unexplored_in_network_only(fakes: SimpleNamespace) -> None:
    s = {"post_unexplored": 1.0}
    inn = fakes.cand(1, 10, phoenix_scores=dict(s), in_network=True)
    oon = fakes.cand(2, 11, phoenix_scores=dict(s), in_network=False)
    run_scorer(WeightedScorer(), fakes.query(), [inn, oon])
    assert inn.weighted_score == pytest.approx(0.016) and oon.weighted_score == pytest.approx(0.001)


def test_weighted_scorer_recency_fallback_when_unscored(fakes: SimpleNamespace) -> None:
    new = fakes.cand(fakes.pid(age_s=60), 10)
    old = fakes.cand(fakes.pid(age_s=40 * 3600), 11)
    scored = fakes.cand(fakes.pid(age_s=50000), 12, phoenix_scores={"favorite": 0.0})
    run_scorer(WeightedScorer(), fakes.query(), [new, old, scored])
    assert 0 < old.weighted_score < new.weighted_score < 0.001 <= scored.weighted_score
    assert new.multipliers[0][0] == "RecencyFallback"


def test_author_diversity_multipliers(fakes: SimpleNamespace) -> None:
    assert [diversity_multiplier(k, 0.5, 0.25) for k in range(4)] == [1.0, 0.625, 0.4375, 0.34375]
    # author 1 has four posts; order by weighted score decides k, not list order
    cs = [
        fakes.cand(1, 1, weighted_score=0.2),
        fakes.cand(2, 1, weighted_score=0.9),
        fakes.cand(3, 2, weighted_score=0.5),
        fakes.cand(4, 1, weighted_score=0.4),
        fakes.cand(5, 1, weighted_score=None),
        fakes.cand(6, 3, weighted_score=float("nan")),
    ]
    run_scorer(AuthorDiversityScorer(), fakes.query(), cs)
    assert cs[1].score == pytest.approx(0.9)
    assert cs[3].score == pytest.approx(0.4 * 0.625)
    assert cs[0].score == pytest.approx(0.2 * 0.4375)
    assert cs[2].score == pytest.approx(0.5)
    assert cs[4].score is None and cs[4].multipliers == [("AuthorDiversityScorer", 0.34375)]
    assert math.isnan(cs[5].score)


def test_oon_factor(fakes: SimpleNamespace) -> None:
    """Oct: unknown network counts as out-of-network (home-mixer sends it as false), and in-network
    replies and reposts are discounted too (EnableOonRescoreForInNetworkRepliesRetweets)."""
    inn = fakes.cand(1, 1, score=1.0, in_network=True)
    oon = fakes.cand(2, 2, score=1.0, in_network=False)
    unknown = fakes.cand(3, 3, score=1.0, in_network=None)
    none = fakes.cand(4, 4, score=None, in_network=False)
    reply = fakes.cand(5, 1, score=1.0, in_network=True, in_reply_to_post_id=1)
    repost = fakes.cand(6, 1, score=1.0, in_network=True, retweeted_post_id=2)
    run_scorer(OONScorer(), fakes.query(), [inn, oon, unknown, none, reply, repost])
    assert (inn.score, oon.score, unknown.score, none.score) == (1.0, 0.75, 0.75, None)
    assert (reply.score, repost.score) == (0.75, 0.75)
    assert oon.multipliers == [("OONScorer", 0.75)]
    off = fakes.cand(5, 1, score=1.0, in_network=True, in_reply_to_post_id=1)
    q = fakes.query(params=Params(enable_oon_rescore_in_network_replies_retweets=False))
    run_scorer(OONScorer(), q, [off])
    assert off.score == 1.0


def test_phoenix_scorer_scores_reposts_as_original(fakes: SimpleNamespace) -> None:
    ranker = fakes.Ranker(probs={500: 0.7, 2: 0.3})
    seq = phoenix_pb2.ActionSequence()
    seq.items.add(post_id=9, author_id=9, action_mask=2)
    q = fakes.query(action_sequence=seq)
    repost = fakes.cand(1, 10, retweeted_post_id=500, retweeted_user_id=50)
    plain = fakes.cand(2, 11)
    run_scorer(PhoenixScorer(ranker), q, [repost, plain])
    sent = ranker.requests[0].candidates
    assert [(c.post_id, c.author_id) for c in sent] == [(500, 50), (2, 11)]
    assert repost.head_scores()["favorite"] == pytest.approx(0.7)
    assert plain.head_scores()["favorite"] == pytest.approx(0.3)
    assert q.model_version == "rank-test" and repost.prediction_request_id


def test_phoenix_scorer_without_history_leaves_unscored(fakes: SimpleNamespace) -> None:
    ranker = fakes.Ranker()
    c = fakes.cand(1, 10)
    run_scorer(PhoenixScorer(ranker), fakes.query(), [c])
    assert not c.is_scored() and ranker.requests == []


def test_top_k_selector_sinks_nan_and_none(fakes: SimpleNamespace) -> None:
    cs = [fakes.cand(i, i, score=s) for i, s in enumerate([0.1, float("nan"), None, 0.5, float("inf"), 0.3])]
    q = fakes.query(params=Params(top_k_candidates_to_select=3))
    selected, rest = TopKScoreSelector().select(q, cs)
    assert [c.post_id for c in selected] == [3, 5, 0]
    assert {c.post_id for c in rest} == {1, 2, 4}


def test_vectorized_path_matches_per_head_path(fakes: SimpleNamespace) -> None:
    """Raw 64-slot ranker vectors (matrix product) and per-head dicts give the same weighted score,
    including the VQV gate, the in-network-only post_unexplored head, NaN and dwell time."""
    rng = np.random.default_rng(3)
    vec_cands, dict_cands = [], []
    for i in range(40):
        probs = (rng.random(64) * 0.2).tolist()
        for h in ("not_interested", "block_author", "mute_author", "report", "not_dwelled"):
            probs[ACTION_HEADS[h]] = 0.0001
        if i % 7 == 0:
            probs[ACTION_HEADS["report"]] = 0.5  # negative total
        if i % 5 == 0:
            probs[ACTION_HEADS["favorite"]] = float("nan")
        kw = {"video_duration_ms": 20_000 if i % 2 else 5_000, "in_network": bool(i % 3)}
        vec_cands.append(fakes.cand(i + 1, 10 + i, action_probs=probs, dwell_time=float(i), **kw))
        heads = {h: probs[j] for h, j in ACTION_HEADS.items()} | {"dwell_time": float(i)}
        dict_cands.append(fakes.cand(i + 1, 10 + i, phoenix_scores=heads, **kw))
    run_scorer(WeightedScorer(), fakes.query(), vec_cands)
    run_scorer(WeightedScorer(), fakes.query(), dict_cands)
    got = [c.weighted_score for c in vec_cands]
    assert got == pytest.approx([c.weighted_score for c in dict_cands], rel=1e-9)
    assert min(got) < 0.001 < max(got)  # both offset branches exercised
