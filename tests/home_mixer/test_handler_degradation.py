"""The whole pipeline through the transport-free handler with in-process fakes: wiring, request
validation, the debug view, and degradation with each dependency down."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from candidate_pipeline import PipelineConfig
from foryou.core.user_state import AuthorData, SocialGraph
from home_mixer.clients import HomeMixerClients
from home_mixer.handler import ScoredPostsHandler
from home_mixer.params import DEFAULT_LIMITS
from home_mixer.pipeline import ScoredPostsPipeline
from home_mixer.query import InvalidQuery
from protos import events_pb2, home_mixer_pb2, phoenix_pb2, thunder_pb2

VIEWER = 1


def build(fakes: SimpleNamespace, config: PipelineConfig | None = None, **fail: bool) -> SimpleNamespace:
    """Viewer 1 follows 10 and 11; blocks 20; mutes 21; mutes 'football'. 30 posts in network,
    30 out of network, plus a few that must never be served."""
    store = fakes.UserState(fail=fail.get("redis", False))
    store.graphs[VIEWER] = SocialGraph(
        VIEWER,
        following=frozenset({10, 11, 20}),
        blocked=frozenset({20}),
        muted=frozenset({21}),
        muted_keywords=frozenset({"football"}),
    )
    seq = phoenix_pb2.ActionSequence()
    seq.items.add(post_id=5, author_id=10, action_mask=2)
    store.sequences[VIEWER] = seq
    light, oon, probs = [], [], {}
    n = 0

    def post(author: int, text: str, **kw: object) -> int:
        nonlocal n
        n += 1
        p = fakes.pid(age_s=60 * n, seq=n)
        store.posts[p] = events_pb2.Post(post_id=p, author_id=author, text=text, **kw)
        store.authors[author] = AuthorData(author, f"user{author}", 100)
        probs[p] = 0.01 * (n % 37)
        return p

    for i in range(30):
        a = 10 + i % 2
        light.append(thunder_pb2.LightPost(post_id=post(a, f"in network {i}"), author_id=a))
    for i in range(30):
        a = 40 + i % 5
        # distinct numbers: the DPP kernel (text embeddings) keeps 50 independent directions
        oon.append((post(a, f"discover {100 + i}"), a, 0.5))
    blocked = post(20, "blocked author")
    light.append(thunder_pb2.LightPost(post_id=blocked, author_id=20))
    muted_kw = post(41, "Football is back")
    oon.append((muted_kw, 41, 0.5))
    muted_author = post(21, "muted author")
    oon.append((muted_author, 21, 0.5))
    own = post(VIEWER, "my own post")
    oon.append((own, VIEWER, 0.5))
    seen = post(42, "already seen")
    oon.append((seen, 42, 0.5))
    thunder = fakes.Thunder(light, fail=fail.get("thunder", False))
    retrieval = fakes.Retrieval(oon, fail=fail.get("retrieval", False))
    ranker = fakes.Ranker(probs, fail=fail.get("ranker", False))
    clients = HomeMixerClients(thunder=thunder, retrieval=retrieval, ranking=ranker, user_state=store)
    handler = ScoredPostsHandler(ScoredPostsPipeline(clients, config=config), clients)
    banned = {blocked, muted_kw, muted_author, own, seen}
    return SimpleNamespace(handler=handler, store=store, banned=banned, seen=seen, ranker=ranker)


def request(w: SimpleNamespace, **kw: object) -> home_mixer_pb2.GetScoredPostsRequest:
    return home_mixer_pb2.GetScoredPostsRequest(viewer_id=VIEWER, seen_ids=[w.seen], **kw)


def test_feed_is_mixed_filtered_and_ordered(fakes: SimpleNamespace) -> None:
    w = build(fakes)
    resp = asyncio.run(w.handler.get_scored_posts(request(w)))
    posts = resp.scored_posts
    assert len(posts) == 35 and not resp.degraded
    assert {p.in_network for p in posts} == {True, False}
    assert not {p.post_id for p in posts} & w.banned
    scores = [p.score for p in posts]
    assert scores == sorted(scores, reverse=True)
    assert resp.model_version == "rank-test" and resp.request_id.endswith(f"-{VIEWER}")
    assert w.store.mget_calls == 1  # core data, video, subscription share one MGET


def test_in_network_only_skips_retrieval(fakes: SimpleNamespace) -> None:
    w = build(fakes)
    resp = asyncio.run(w.handler.get_scored_posts(request(w, in_network_only=True)))
    assert resp.scored_posts and all(p.in_network for p in resp.scored_posts)


def test_debug_view_explains_every_candidate(fakes: SimpleNamespace) -> None:
    w = build(fakes)
    req = home_mixer_pb2.GetDebugScoredPostsRequest(
        query=request(w), param_overrides={"oon_weight_factor": "0.5", "result_size": "40"}
    )
    resp = asyncio.run(w.handler.get_debug_scored_posts(req))
    by_outcome: dict[str, list] = {}
    for c in resp.candidates:
        by_outcome.setdefault(c.outcome, []).append(c)
    assert len(by_outcome["selected"]) == 40  # override above the default 35
    removed = {c.post_id: c.filtered_by for c in by_outcome["filtered"]}
    assert set(removed.values()) >= {"MutedKeywordFilter", "AuthorSocialgraphFilter", "SelfPostFilter"}
    assert all(pid in removed for pid in w.banned - {w.seen})  # seen is excluded at the source
    sel = by_outcome["selected"][0]
    assert sel.action_probs["favorite"] > 0 and sel.weighted_score > 0
    names = [m.name for m in sel.multipliers]
    assert names == ["AuthorDiversityScorer", "OONScorer"]
    oon = next(c for c in by_outcome["selected"] if not c.in_network)
    assert dict((m.name, m.value) for m in oon.multipliers)["OONScorer"] == 0.5
    assert resp.params["oon_weight_factor"] == "0.5"
    assert {s.component for s in resp.stages} >= {"ThunderSource", "PhoenixScorer", "VisibilityFilter"}


@pytest.mark.parametrize(
    ("req", "msg"),
    [
        (home_mixer_pb2.GetScoredPostsRequest(viewer_id=0), "viewer_id"),
        (home_mixer_pb2.GetScoredPostsRequest(viewer_id=-3), "viewer_id"),
        (
            home_mixer_pb2.GetScoredPostsRequest(viewer_id=1, seen_ids=range(0, DEFAULT_LIMITS.max_seen_ids)),
            "seen_ids",
        ),
        (home_mixer_pb2.GetScoredPostsRequest(viewer_id=1, served_ids=[5, -1]), "served_ids"),
    ],
)
def test_invalid_requests(
    fakes: SimpleNamespace, req: home_mixer_pb2.GetScoredPostsRequest, msg: str
) -> None:
    w = build(fakes)
    with pytest.raises(InvalidQuery, match=msg):
        asyncio.run(w.handler.get_scored_posts(req))


def test_unknown_param_override_rejected(fakes: SimpleNamespace) -> None:
    w = build(fakes)
    req = home_mixer_pb2.GetDebugScoredPostsRequest(query=request(w), param_overrides={"nope": "1"})
    with pytest.raises(ValueError, match="unknown param"):
        asyncio.run(w.handler.get_debug_scored_posts(req))


def _degraded_count(dep: str) -> float:
    from prometheus_client import REGISTRY

    return (
        REGISTRY.get_sample_value("foryou_degraded_total", {"service": "home_mixer", "dependency": dep})
        or 0.0
    )


def test_thunder_down_serves_out_of_network(fakes: SimpleNamespace) -> None:
    w = build(fakes, thunder=True)
    before = _degraded_count("thunder")
    resp = asyncio.run(w.handler.get_scored_posts(request(w)))
    assert resp.degraded == ["thunder"] and _degraded_count("thunder") == before + 1
    assert resp.scored_posts and not any(p.in_network for p in resp.scored_posts)


def test_retrieval_down_serves_in_network(fakes: SimpleNamespace) -> None:
    w = build(fakes, retrieval=True)
    resp = asyncio.run(w.handler.get_scored_posts(request(w)))
    assert resp.degraded == ["retrieval"]
    assert resp.scored_posts and all(p.in_network for p in resp.scored_posts)


def test_ranker_down_serves_recency_order(fakes: SimpleNamespace) -> None:
    w = build(fakes, ranker=True)
    before = _degraded_count("ranker")
    resp = asyncio.run(w.handler.get_scored_posts(request(w)))
    assert resp.degraded == ["ranker"] and _degraded_count("ranker") == before + 1
    posts = resp.scored_posts
    assert len(posts) == 35 and not {p.post_id for p in posts} & w.banned
    # per source kind the order is newest first (OON ones are × 0.75, authors decayed)
    inn = [p.post_id for p in posts if p.in_network and p.author_id == 10]
    assert inn == sorted(inn, reverse=True)


def test_redis_down_answers_empty_and_says_why(fakes: SimpleNamespace) -> None:
    """Redis down: retrieval still answers, but no post can be cleared by the safety filters (no
    subscription flags, muted keywords or blocks), so they fail closed: an empty feed that says why
    (tests/home_mixer/test_fail_closed.py covers each filter)."""
    w = build(fakes, redis=True)
    before = _degraded_count("redis")
    resp = asyncio.run(w.handler.get_scored_posts(request(w)))
    assert resp.degraded == ["redis", "IneligibleSubscriptionFilter: subscription data unavailable"]
    assert _degraded_count("redis") == before + 1
    assert not resp.scored_posts
    assert w.ranker.requests == []  # nothing left to rank


def test_slow_dependency_hits_timeout_not_deadline(fakes: SimpleNamespace) -> None:
    w = build(fakes)

    async def slow(request: object) -> object:
        await asyncio.sleep(5)
        raise AssertionError("unreachable")

    w.ranker.predict = slow  # type: ignore[method-assign]
    resp = asyncio.run(asyncio.wait_for(w.handler.get_scored_posts(request(w)), timeout=3))
    assert resp.degraded == ["ranker"] and len(resp.scored_posts) == 35


def test_request_deadline_during_ranking_still_scores_by_recency(fakes: SimpleNamespace) -> None:
    """The request deadline (0.2 s) passes while the ranker hangs: the ranker is cut off, and the
    cheap scorers still run after the deadline, so every candidate is scored in recency order. The
    post-selection author-relation lookup is not started after the deadline, so the visibility filter
    cannot clear the selected posts and fails closed: the feed is empty and says why."""
    w = build(fakes, config=PipelineConfig(component_timeout_s=0.5, request_deadline_s=0.2))

    async def hang(request: object) -> object:
        await asyncio.sleep(5)
        raise AssertionError("unreachable")

    w.ranker.predict = hang  # type: ignore[method-assign]
    req = home_mixer_pb2.GetDebugScoredPostsRequest(query=request(w))
    resp = asyncio.run(asyncio.wait_for(w.handler.get_debug_scored_posts(req), timeout=3))
    # post-selection Redis lookups are not started after the deadline: reported as "deadline"
    assert resp.degraded == ["deadline", "ranker", "VisibilityFilter: author relation unavailable"]
    assert not any(c.outcome == "selected" for c in resp.candidates)
    hidden = [c for c in resp.candidates if c.filtered_by == "VisibilityFilter"]
    assert len(hidden) == 50  # the whole top-K selection, scored by recency, then not served
    assert all(c.final_score > 0 for c in hidden)
    assert {c.fields["removal_reason"] for c in hidden} == {"author relation unavailable"}
    inn = [c.post_id for c in hidden if c.in_network and c.author_id == 11]
    assert inn == sorted(inn, reverse=True)
