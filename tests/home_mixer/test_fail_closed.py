"""Safety and privacy filters fail closed (issue 4): when the data a filter needs is missing (its
hydrator failed, Redis is down, a candidate's core data was not loaded) the candidates it cannot
clear are removed and the response says why; quality-only components keep failing open. Unit cases
per filter, then the whole pipeline on a real redis-server that is paused (SIGSTOP) or partly
unreachable (some reads sent to a dead port). Also: a viewer with no user state is flagged."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from candidate_pipeline import PipelineConfig
from foryou.app import infra
from foryou.core import user_state as us
from foryou.core.net import free_port
from foryou.core.user_state import SocialGraph
from home_mixer.clients import HomeMixerClients, RedisUserState
from home_mixer.filters.author_socialgraph_filter import AuthorSocialgraphFilter
from home_mixer.filters.core_data_hydration_filter import CoreDataHydrationFilter
from home_mixer.filters.ineligible_subscription_filter import IneligibleSubscriptionFilter
from home_mixer.filters.muted_keyword_filter import MutedKeywordFilter
from home_mixer.filters.visibility_filter import VisibilityFilter
from home_mixer.handler import USER_STATE_MISSING, ScoredPostsHandler
from home_mixer.pipeline import ScoredPostsPipeline
from home_mixer.query import UserFeatures
from protos import events_pb2, home_mixer_pb2

MISSING = UserFeatures(available=False)  # what a query holds when UserFeaturesQueryHydrator failed


def ids(cs: list[Any]) -> list[int]:
    return [c.post_id for c in cs]


# ---- each filter on its own ------------------------------------------------------------------


def test_subscription_filter_fails_closed(fakes: SimpleNamespace) -> None:
    public = fakes.cand(1, 10, subscription_checked=True)
    sub_only = fakes.cand(2, 50, subscription_author_id=50, subscription_checked=True)
    unchecked = fakes.cand(3, 60)  # SubscriptionHydrator did not run for it (post store down)
    q = fakes.query(user_features=UserFeatures(subscriptions=frozenset({50})))
    kept, removed = IneligibleSubscriptionFilter().filter(q, [public, sub_only, unchecked])
    assert kept == [public, sub_only] and removed == [unchecked]
    assert unchecked.removal_reason == "subscription data unavailable"
    assert q.fail_closed == {"IneligibleSubscriptionFilter: subscription data unavailable": 1}
    # the viewer's subscriptions unknown: subscriber-only posts go, public ones stay
    q = fakes.query(user_features=MISSING)
    kept, removed = IneligibleSubscriptionFilter().filter(q, [public, sub_only])
    assert kept == [public] and removed == [sub_only]
    assert sub_only.removal_reason == "subscription data unavailable"


def test_muted_keyword_filter_fails_closed(fakes: SimpleNamespace) -> None:
    f = MutedKeywordFilter()
    clean = fakes.cand(1, 10, text="hello", core_data_found=True)
    no_text = fakes.cand(2, 10, core_data_found=None)  # core data not loaded
    q = fakes.query(user_features=MISSING)
    assert f.enable(q)  # enabled although no keyword is known
    kept, removed = f.filter(q, [clean, no_text])
    assert kept == [] and removed == [clean, no_text]
    assert q.fail_closed == {"MutedKeywordFilter: muted keywords unavailable": 2}
    q = fakes.query(user_features=UserFeatures(muted_keywords=("football",)))
    kept, removed = f.filter(q, [clean, no_text])
    assert kept == [clean] and removed == [no_text] and no_text.removal_reason == "post text unavailable"
    assert not f.enable(fakes.query())  # known, no keywords: nothing to clear, filter off


def test_author_socialgraph_filter_fails_closed(fakes: SimpleNamespace) -> None:
    f = AuthorSocialgraphFilter()
    a = fakes.cand(1, 10, core_data_found=True)
    unloaded = fakes.cand(2, 11, core_data_found=None)  # a repost of a blocked author? unknown
    q = fakes.query(user_features=MISSING)
    kept, removed = f.filter(q, [a, unloaded])
    assert kept == [] and removed == [a, unloaded]
    assert a.removal_reason == "blocked/muted authors unavailable"
    q = fakes.query(user_features=UserFeatures(blocked=frozenset({20})))
    kept, removed = f.filter(q, [a, unloaded])
    assert kept == [a] and removed == [unloaded] and unloaded.removal_reason == "repost author unavailable"
    q = fakes.query(user_features=UserFeatures())  # blocks nobody: nothing to clear
    assert f.filter(q, [a, unloaded]).kept == [a, unloaded]


def test_visibility_filter_fails_closed(fakes: SimpleNamespace) -> None:
    ok = fakes.cand(1, 10, core_data_found=True, author_blocks_viewer=False)
    no_relation = fakes.cand(2, 10, core_data_found=True)  # relation lookup failed / not started
    no_labels = fakes.cand(3, 10, author_blocks_viewer=False)  # core data not loaded
    spam = fakes.cand(4, 10, labels=("spam",))  # a rule fires on what is known: its reason stands
    q = fakes.query()
    kept, removed = VisibilityFilter().filter(q, [ok, no_relation, no_labels, spam])
    assert kept == [ok] and removed == [no_relation, no_labels, spam]
    assert [c.visibility_reason for c in removed] == [
        "AuthorRelationUnavailable",
        "LabelsUnavailable",
        "SpamLabel",
    ]
    assert q.fail_closed == {
        "VisibilityFilter: author relation unavailable": 1,
        "VisibilityFilter: post labels unavailable": 1,
    }


def test_quality_filter_still_fails_open(fakes: SimpleNamespace) -> None:
    store_down = fakes.cand(1, 10, core_data_found=None)
    q = fakes.query()
    assert CoreDataHydrationFilter().filter(q, [store_down]).kept == [store_down]
    assert q.fail_closed == {}


# ---- the pipeline with fakes: user state missing ----------------------------------------------


def _small(fakes: SimpleNamespace, graph: SocialGraph | None, history: bool) -> SimpleNamespace:
    store = fakes.UserState()
    if graph is not None:
        store.graphs[1] = graph
    if history:
        store.sequences[1] = fakes.history()
    oon = []
    for i in range(10):
        p = fakes.pid(age_s=100 + i, seq=i)
        store.posts[p] = events_pb2.Post(post_id=p, author_id=50, text=f"post {i}")
        oon.append((p, 50, 0.3))
    clients = HomeMixerClients(fakes.Thunder([]), fakes.Retrieval(oon), fakes.Ranker(), store)
    return SimpleNamespace(handler=ScoredPostsHandler(ScoredPostsPipeline(clients), clients))


@pytest.mark.parametrize(
    ("graph", "history", "flagged"),
    [
        (None, False, True),  # no key at all: a brand-new user, or a Redis wipe
        (SocialGraph(1, following=frozenset({10})), False, False),
        (None, True, False),
        (SocialGraph(1, muted=frozenset({99})), False, True),  # follows nobody, no history
    ],
)
def test_user_state_missing_is_flagged_not_failed(
    fakes: SimpleNamespace, graph: SocialGraph | None, history: bool, flagged: bool
) -> None:
    w = _small(fakes, graph, history)
    resp = asyncio.run(w.handler.get_scored_posts(home_mixer_pb2.GetScoredPostsRequest(viewer_id=1)))
    assert list(resp.degraded) == ([USER_STATE_MISSING] if flagged else [])
    assert len(resp.scored_posts) == 10  # served either way (out of network)


def test_user_state_unreadable_is_not_user_state_missing(fakes: SimpleNamespace) -> None:
    w = _small(fakes, None, False)
    w.handler.clients.user_state.fail = True
    resp = asyncio.run(w.handler.get_scored_posts(home_mixer_pb2.GetScoredPostsRequest(viewer_id=1)))
    assert USER_STATE_MISSING not in resp.degraded and resp.degraded[0] == "redis"


# ---- the whole pipeline on a real redis-server ------------------------------------------------

VIEWER = 7


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this module's own, so it can be paused (SIGSTOP) without stalling others."""
    proc, url = infra.start_redis(tmp_path_factory.mktemp("redis"), persist=False)
    try:
        yield proc, url
    finally:
        os.kill(proc.pid, signal.SIGCONT)  # never leave it stopped
        proc.terminate()
        proc.wait(10)


def seed(url: str, prefix: str, fakes: SimpleNamespace) -> SimpleNamespace:
    """Viewer 7 follows 100 and 101, blocks 102, subscribes to 500, mutes "election". Besides the
    ordinary posts, three the viewer must never see get the ranker's highest scores, so a filter that
    let them through would put them at the top of the feed."""
    r = redis.Redis.from_url(url)
    r.sadd(us.social_key("following", VIEWER, prefix), 100, 101)
    r.sadd(us.social_key("blocked", VIEWER, prefix), 102)
    r.sadd(us.social_key("subs", VIEWER, prefix), 500)
    r.sadd(us.social_key("mutedkw", VIEWER, prefix), "election")
    fakes.write_history(r, VIEWER, prefix)
    n = 0
    probs: dict[int, float] = {}

    def post(author: int, text: str, prob: float = 0.1, **kw: Any) -> int:
        nonlocal n
        n += 1
        pid = fakes.pid(age_s=30 * n, seq=n)
        p = events_pb2.Post(
            post_id=pid, author_id=author, created_at=int(time.time()) - 30 * n, text=text, **kw
        )
        r.set(us.post_key(pid, prefix), us.encode_post(p))
        r.hset(us.author_key(author, prefix), mapping={"screen_name": f"u{author}", "follower_count": 10})
        probs[pid] = prob
        return pid

    from protos import thunder_pb2

    light = [
        thunder_pb2.LightPost(post_id=post(100 + i % 2, f"friend news {i}"), author_id=100 + i % 2)
        for i in range(20)
    ]
    oon = [(post(300 + i % 7, f"trending {i}"), 300 + i % 7, 0.5) for i in range(30)]
    bad = {
        "subscriber_only": post(501, "for my subscribers", prob=0.9, subscriber_only=True),
        "keyword": post(302, "The ELECTION results", prob=0.9),
        "blocked_repost": post(
            303, "look at this", prob=0.9, is_retweet=True, source_post_id=1, source_user_id=102
        ),
    }
    allowed_sub = post(500, "subscribers only, and the viewer subscribes", prob=0.9, subscriber_only=True)
    oon += [(bad["subscriber_only"], 501, 0.9), (bad["keyword"], 302, 0.9), (bad["blocked_repost"], 303, 0.9)]
    oon.append((allowed_sub, 500, 0.9))
    return SimpleNamespace(
        thunder=fakes.Thunder(light),
        retrieval=fakes.Retrieval(oon),
        ranker=fakes.Ranker(probs),
        bad=bad,
        allowed_sub=allowed_sub,
    )


class SplitStore:
    """The real Redis user-state client, with the named reads going to a dead Redis port instead:
    one part of the user state is unreachable, the rest is live."""

    def __init__(self, live: RedisUserState, dead: RedisUserState, methods: set[str]) -> None:
        self.live, self.dead, self.methods = live, dead, methods

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dead if name in self.methods else self.live, name)

    async def close(self) -> None:
        await self.live.close()
        await self.dead.close()


# generous timeouts (a shared, loaded test machine): an unreachable part fails by connection
# refused, a paused Redis by the client's socket timeout, never by a slow but live Redis
GENEROUS = PipelineConfig(
    component_timeout_s=3.0,
    request_deadline_s=8.0,
    component_timeouts={
        n: 3.0
        for n in (
            "UserActionSeqQueryHydrator",
            "UserFeaturesQueryHydrator",
            "ServedHistoryQueryHydrator",
            "CoreDataCandidateHydrator",
            "VideoDurationCandidateHydrator",
            "SubscriptionHydrator",
            "AuthorDataCandidateHydrator",
            "AuthorRelationCandidateHydrator",
        )
    },
)


def debug_feed(
    w: SimpleNamespace, store: Any, viewer: int = VIEWER, **req: Any
) -> home_mixer_pb2.GetDebugScoredPostsResponse:
    async def go() -> home_mixer_pb2.GetDebugScoredPostsResponse:
        clients = HomeMixerClients(w.thunder, w.retrieval, w.ranker, store)
        pipeline = ScoredPostsPipeline(clients, config=GENEROUS)
        handler = ScoredPostsHandler(pipeline, clients)
        q = home_mixer_pb2.GetScoredPostsRequest(viewer_id=viewer, **req)
        resp = await handler.get_debug_scored_posts(home_mixer_pb2.GetDebugScoredPostsRequest(query=q))
        await pipeline.drain_side_effects()
        await clients.close()
        return resp

    return asyncio.run(go())


def served(resp: home_mixer_pb2.GetDebugScoredPostsResponse) -> set[int]:
    return {c.post_id for c in resp.candidates if c.outcome == "selected"}


def removal(resp: home_mixer_pb2.GetDebugScoredPostsResponse, post_id: int) -> tuple[str, str]:
    c = next(c for c in resp.candidates if c.post_id == post_id)
    return c.filtered_by, c.fields.get("removal_reason", "")


@pytest.fixture
def world(
    own_redis: tuple[subprocess.Popen[bytes], str], unique_prefix: str, fakes: SimpleNamespace
) -> SimpleNamespace:
    _, url = own_redis
    w = seed(url, unique_prefix, fakes)
    w.url, w.prefix = url, unique_prefix
    w.proc = own_redis[0]
    return w


def live(w: SimpleNamespace, timeout_s: float = 2.0) -> RedisUserState:
    return RedisUserState(w.url, w.prefix, timeout_s=timeout_s)


def dead(w: SimpleNamespace) -> RedisUserState:
    return RedisUserState(f"redis://127.0.0.1:{free_port()}/0", w.prefix)


@pytest.mark.integration
def test_healthy_feed_filters_normally(world: SimpleNamespace) -> None:
    resp = debug_feed(world, live(world))
    assert not resp.degraded
    got = served(resp)
    assert len(got) == 35 and world.allowed_sub in got and not got & set(world.bad.values())
    assert removal(resp, world.bad["subscriber_only"]) == ("IneligibleSubscriptionFilter", "")
    assert removal(resp, world.bad["keyword"]) == ("MutedKeywordFilter", "")
    # an out-of-network repost: the Oct OONRetweetReplyFilter (before the social-graph filter)
    # removes it first
    assert removal(resp, world.bad["blocked_repost"]) == ("OONRetweetReplyFilter", "")


@pytest.mark.integration
def test_redis_paused_serves_nothing_it_cannot_clear(world: SimpleNamespace) -> None:
    """The redis-server process is stopped (SIGSTOP): every read times out. Without the viewer's
    subscriptions and muted keywords and without the posts' data, no candidate can be cleared: none
    is served, and the response says why. Resumed, the same feed is whole again."""
    os.kill(world.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        resp = debug_feed(world, live(world, timeout_s=0.25))  # the service's socket timeout
        assert time.monotonic() - t0 < 3.0
    finally:
        os.kill(world.proc.pid, signal.SIGCONT)
    assert list(resp.degraded) == ["redis", "IneligibleSubscriptionFilter: subscription data unavailable"]
    assert served(resp) == set()
    for pid in world.bad.values():  # retrieval still offered them; they were removed, with the reason
        assert removal(resp, pid) == ("IneligibleSubscriptionFilter", "subscription data unavailable")
    again = debug_feed(world, live(world))
    assert not again.degraded and len(served(again)) == 35


@pytest.mark.integration
def test_social_graph_unreachable_removes_what_it_cannot_clear(world: SimpleNamespace) -> None:
    """Only the viewer's social graph is unreachable (posts are readable): subscriber-only posts go
    (subscriptions unknown), then every other post (muted keywords unknown), each with its reason."""
    store = SplitStore(live(world), dead(world), {"read_social_graph"})
    resp = debug_feed(world, store)
    assert list(resp.degraded) == [
        "redis",
        "IneligibleSubscriptionFilter: subscription data unavailable",
        "MutedKeywordFilter: muted keywords unavailable",
    ]
    assert served(resp) == set()
    for pid in (world.bad["subscriber_only"], world.allowed_sub):
        assert removal(resp, pid) == ("IneligibleSubscriptionFilter", "subscription data unavailable")
    assert removal(resp, world.bad["keyword"]) == ("MutedKeywordFilter", "muted keywords unavailable")


@pytest.mark.integration
def test_post_store_unreachable_removes_unclearable_posts(world: SimpleNamespace) -> None:
    """The post MGET fails: no candidate's subscriber-only flag, text or labels is known."""
    store = SplitStore(live(world), dead(world), {"mget_posts"})
    resp = debug_feed(world, store)
    assert list(resp.degraded) == ["redis", "IneligibleSubscriptionFilter: subscription data unavailable"]
    assert served(resp) == set()
    assert removal(resp, world.bad["keyword"]) == (
        "IneligibleSubscriptionFilter",
        "subscription data unavailable",
    )


@pytest.mark.integration
def test_author_relation_unreachable_hides_the_selection(world: SimpleNamespace) -> None:
    """Does the author block the viewer? Unknown for every selected post: none is served."""
    store = SplitStore(live(world), dead(world), {"authors_blocking"})
    resp = debug_feed(world, store)
    assert list(resp.degraded) == ["redis", "VisibilityFilter: author relation unavailable"]
    assert served(resp) == set()
    hidden = [c for c in resp.candidates if c.filtered_by == "VisibilityFilter"]
    assert len(hidden) == 50 and {c.fields["removal_reason"] for c in hidden} == {
        "author relation unavailable"
    }


@pytest.mark.integration
def test_quality_components_still_fail_open(world: SimpleNamespace) -> None:
    """History, served history and author data unreachable: quality only, so the feed is still
    served in full (recency order, no ranker) and the safety filters, whose data is there, still
    remove what they must."""
    store = SplitStore(live(world), dead(world), {"read_action_sequence", "read_served", "mget_authors"})
    resp = debug_feed(world, store, is_bottom_request=True)
    assert list(resp.degraded) == ["redis"]
    got = served(resp)
    assert len(got) == 35 and world.allowed_sub in got and not got & set(world.bad.values())
    assert world.ranker.requests == []  # no history: ranker skipped, recency fallback


@pytest.mark.integration
def test_wiped_user_state_is_flagged(world: SimpleNamespace) -> None:
    """After a wipe of the viewer's keys the feed is still served (out of network) and flagged."""
    r = redis.Redis.from_url(world.url)
    r.delete(*(us.social_key(k, VIEWER, world.prefix) for k in ("following", "blocked", "subs", "mutedkw")))
    r.delete(us.seq_key(VIEWER, world.prefix))
    resp = debug_feed(world, live(world))
    assert list(resp.degraded) == [USER_STATE_MISSING]
    assert served(resp) and all(not c.in_network for c in resp.candidates if c.outcome == "selected")
