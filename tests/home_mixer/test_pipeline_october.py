"""The whole Oct-7 pipeline on in-process mocks (the reference's `mock()` pipeline idea, issue 19):
the stage order, every new component acting on something (popular posts, mutual follow, the OON
reply/repost filter, media-only posts, the served filter on a top request, the in-network reply
discount, the new-author cold start, the DPP re-rank) and the value-model fallback."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from rich.console import Console

from foryou.core.user_state import AuthorData, SocialGraph
from home_mixer.clients import HomeMixerClients
from home_mixer.explain import dpp_move, render_feed_table
from home_mixer.handler import ScoredPostsHandler
from home_mixer.pipeline import ScoredPostsPipeline
from home_mixer.scorers.author_diversity_scorer import AuthorDiversityScorer
from protos import events_pb2, home_mixer_pb2, phoenix_pb2, thunder_pb2

VIEWER = 1
OCTOBER_ORDER = {
    "source": ["ThunderSource", "PopularPostsSource", "PhoenixSource", "SidSource"],
    "hydrator": [
        "InNetworkCandidateHydrator",
        "BidirectionalFollowHydrator",
        "CoreDataCandidateHydrator",
        "VideoDurationCandidateHydrator",
        "SubscriptionHydrator",
        "AuthorDataCandidateHydrator",
        "EngagementCountsHydrator",
    ],
    "filter": [
        "DropDuplicatesFilter",
        "CoreDataHydrationFilter",
        "AgeFilter",
        "SelfPostFilter",
        "OONRetweetReplyFilter",
        "RepostDeduplicationFilter",
        "IneligibleSubscriptionFilter",
        "PreviouslySeenPostsFilter",
        "PreviouslyServedPostsFilter",
        "MutedKeywordFilter",
        "AuthorSocialgraphFilter",
        "NewUserMinEngagementFilter",
        "FavHoldoutFilter",
    ],
    "scorer": [
        "PhoenixScorer",
        "WeightedScorer",
        "AuthorColdStartScorer",
        "AuthorDiversityScorer",
        "OONScorer",
    ],
    "selector": ["DppSelector"],
    "post_selection_hydrator": ["AuthorRelationCandidateHydrator", "VideoAspectRatioHydrator"],
    # VideoCarouselFilter last (the reference's test asserts it)
    "post_selection_filter": ["VisibilityFilter", "DedupConversationFilter", "VideoCarouselFilter"],
}


def build(fakes: SimpleNamespace) -> SimpleNamespace:
    """Viewer 1 follows 10, 11 and 12; 12 follows back (mutual). 24 in-network originals with
    distinct texts, an in-network reply and repost, OON posts from retrieval (incl. a repost, a
    reply and a near-duplicate pair), a media-only post, a post served a minute ago, a popular
    post only the popular-posts source knows, and a new author's 20-minute-old post."""
    store = fakes.UserState()
    store.graphs[VIEWER] = SocialGraph(VIEWER, following=frozenset({10, 11, 12}))
    store.followers[VIEWER] = {12, 60}
    seq = phoenix_pb2.ActionSequence()
    seq.items.add(post_id=5, author_id=10, action_mask=2)
    store.sequences[VIEWER] = seq
    light: list[thunder_pb2.LightPost] = []
    oon: list[tuple[int, int, float]] = []
    probs: dict[int, float] = {}
    n = 0

    def post(author: int, text: str, fav: float, age_s: float | None = None, **kw: object) -> int:
        nonlocal n
        n += 1
        p = fakes.pid(age_s=age_s or 600 + 60 * n, seq=n)
        store.posts[p] = events_pb2.Post(post_id=p, author_id=author, text=text, **kw)
        store.authors.setdefault(author, AuthorData(author, f"user{author}", 100_000))
        probs[p] = fav
        return p

    w = SimpleNamespace()
    for i in range(24):
        a = 10 + i % 3
        light.append(
            thunder_pb2.LightPost(post_id=post(a, f"topic{i} words{i}", 0.3 + 0.01 * i), author_id=a)
        )
    w.mutual = [lp.post_id for lp in light if lp.author_id == 12]
    root = light[0].post_id
    w.in_reply = post(10, "reply words", 0.6, in_reply_to_post_id=root, conversation_id=root)
    light.append(
        thunder_pb2.LightPost(
            post_id=w.in_reply, author_id=10, in_reply_to_post_id=root, conversation_id=root
        )
    )
    for i in range(10):
        oon.append((post(40 + i, f"discover{i} fresh{i}", 0.1), 40 + i, 0.5))
    w.twin_a = post(50, "identical text here", 0.9)
    w.twin_b = post(51, "identical text here", 0.89)
    oon += [(w.twin_a, 50, 0.5), (w.twin_b, 51, 0.5)]
    w.oon_repost = post(52, "RT look", 0.9, is_retweet=True, source_post_id=root, source_user_id=10)
    w.oon_reply = post(53, "@user10 hi", 0.9, in_reply_to_post_id=root, conversation_id=root, is_reply=True)
    w.media_only = post(54, "", 0.5, has_video=True, video_duration_ms=30_000)
    w.served = post(55, "already served", 0.9)
    oon += [(w.oon_repost, 52, 0.5), (w.oon_reply, 53, 0.5), (w.media_only, 54, 0.5), (w.served, 55, 0.5)]
    # a new author (40 followers) posted 20 minutes ago: 30 home impressions, 2 favs
    w.new_author = post(70, "hello world first post", 0.15, age_s=1_200)
    store.authors[70] = AuthorData(70, "newbie", 40)
    store.counts[w.new_author] = (30, 2)
    oon.append((w.new_author, 70, 0.5))
    w.popular = post(80, "viral thing", 0.7)
    store.popular = [(w.popular, 80, 5_000)]
    ranker = fakes.Ranker(probs, reply=0.02, dwell=0.3)
    clients = HomeMixerClients(
        thunder=fakes.Thunder(light), retrieval=fakes.Retrieval(oon), ranking=ranker, user_state=store
    )
    w.pipeline = ScoredPostsPipeline(clients)
    w.handler = ScoredPostsHandler(w.pipeline, clients)
    w.request = home_mixer_pb2.GetDebugScoredPostsRequest(
        query=home_mixer_pb2.GetScoredPostsRequest(viewer_id=VIEWER, served_ids=[w.served])
    )
    return w


def by_id(resp: home_mixer_pb2.GetDebugScoredPostsResponse) -> dict[int, home_mixer_pb2.DebugCandidate]:
    return {c.post_id: c for c in resp.candidates}


def test_october_stage_order(fakes: SimpleNamespace) -> None:
    comps = build(fakes).pipeline.components()
    for stage, names in OCTOBER_ORDER.items():
        assert comps[stage] == names, stage


def test_whole_pipeline_on_mocks(fakes: SimpleNamespace) -> None:
    w = build(fakes)
    resp = asyncio.run(w.handler.get_debug_scored_posts(w.request))
    assert list(resp.degraded) == []
    c = by_id(resp)
    selected = sorted((x for x in resp.candidates if x.outcome == "selected"), key=lambda x: x.position)
    assert len(selected) == 35
    # filters: OON repost and reply; the post served a minute ago (a top request); media-only kept
    assert c[w.oon_repost].filtered_by == c[w.oon_reply].filtered_by == "OONRetweetReplyFilter"
    assert c[w.served].filtered_by == "PreviouslyServedPostsFilter"
    assert c[w.media_only].outcome != "filtered"
    # sources: the popular post came only from the popular-posts source
    assert c[w.popular].source == "PopularPostsSource" and c[w.popular].outcome == "selected"
    # mutual follow: the reply weight 5 + 15 on the mutual author's originals (reply P = 0.02)
    mutual, plain = c[w.mutual[0]], next(c[lp] for lp in c if c[lp].author_id == 10 and lp != w.in_reply)
    assert mutual.fields["mutual_follow"] == "True" and plain.fields["mutual_follow"] == "False"
    fav_gap = 0.5 * (mutual.action_probs["favorite"] - plain.action_probs["favorite"])
    assert mutual.weighted_score - plain.weighted_score == pytest.approx(fav_gap + 15 * 0.02, rel=1e-5)
    # the in-network reply is discounted like an out-of-network post
    assert {m.name: m.value for m in c[w.in_reply].multipliers}["OONScorer"] == 0.75
    # cold start: the new author's post (low score) is lifted to rank 15 and shows the multiplier
    new = c[w.new_author]
    assert new.fields["cold_start_lift_rank"] == "15" and new.fields["view_count_on_home"] == "30"
    assert {m.name for m in new.multipliers} >= {"AuthorColdStartScorer"}
    assert new.outcome == "selected"
    # DPP: of the two identical texts only the better one keeps a score; each post shows its rank
    # before DPP and its served position
    assert c[w.twin_a].fields["dpp"] == "selected" and c[w.twin_b].fields["dpp"] == "dropped"
    assert c[w.twin_b].final_score == 0.0
    assert int(c[w.twin_b].fields["rank_before_dpp"]) < int(c[w.twin_a].fields["rank_before_dpp"]) + 3
    assert all("rank_before_dpp" in x.fields for x in selected if x.final_score > 0)
    scores = [x.final_score for x in selected]
    assert scores == sorted(scores, reverse=True)
    # the explain table shows the multipliers and the DPP move
    console = Console(record=True, width=400)
    console.print(render_feed_table(resp, max_rows=200))
    text = console.export_text()
    assert "AuthorColdStart×" in text and "Dpp×0" in text and "OON×0.75" in text and "⇄" in text
    assert f"{int(c[w.twin_b].fields['rank_before_dpp']) + 1}→✗" in text
    assert (
        dpp_move(c[w.popular])
        == f"{int(c[w.popular].fields['rank_before_dpp']) + 1}→{c[w.popular].position + 1}"
    )


def test_value_model_failure_serves_local_scores(
    fakes: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference: when the vm-ranker call fails, every candidate gets its local score s_loc —
    no author diversity, no OON discount, no DPP — and here the response says so."""

    def broken(self, query, candidates):  # type: ignore[no-untyped-def]
        raise RuntimeError("value model down")

    monkeypatch.setattr(AuthorDiversityScorer, "_score", broken)
    w = build(fakes)
    resp = asyncio.run(w.handler.get_debug_scored_posts(w.request))
    assert list(resp.degraded) == ["value_model"]
    selected = [x for x in resp.candidates if x.outcome == "selected"]
    assert len(selected) == 35
    for x in selected:
        assert x.final_score == pytest.approx(float(x.fields["local_score"]), rel=1e-6)
        assert not {m.name for m in x.multipliers} & {"AuthorDiversityScorer", "OONScorer", "DppSelector"}
        assert "dpp" not in x.fields
    c = by_id(resp)
    assert c[w.twin_b].final_score > 0  # DPP did not drop the duplicate


def test_phoenix_oon_replies_switch(fakes: SimpleNamespace) -> None:
    """EnablePhoenixOonReplies (sheet §5.4): with the switch on, the OON reply from Phoenix retrieval
    (its ancestors hydrated from core data) survives OONRetweetReplyFilter; the OON repost does not."""
    w = build(fakes)
    w.request.param_overrides["enable_phoenix_oon_replies"] = "true"
    c = by_id(asyncio.run(w.handler.get_debug_scored_posts(w.request)))
    assert (
        c[w.oon_reply].outcome != "filtered"
        and c[w.oon_reply].fields["served_type"] == "ForYouPhoenixRetrieval"
    )
    assert c[w.oon_repost].filtered_by == "OONRetweetReplyFilter"
