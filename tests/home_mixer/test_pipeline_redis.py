"""Whole pipeline on a real Redis (ingesters' key layout) with Thunder's real in-process handler;
served history lands in Redis and served impressions on the real broker."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from foryou.app.in_process import InProcessThunderClient
from foryou.core import user_state as us
from foryou.core.kafka import consumer_config, make_producer
from foryou.core.settings import Settings
from home_mixer.clients import HomeMixerClients, RedisUserState, served_key
from home_mixer.handler import ScoredPostsHandler
from home_mixer.pipeline import ScoredPostsPipeline
from protos import events_pb2, home_mixer_pb2
from thunder.config import ThunderConfig
from thunder.handler import InNetworkPostsHandler
from thunder.ingest import to_record
from thunder.store import PostStore

pytestmark = pytest.mark.integration
VIEWER = 7


def seed(settings: Settings, fakes: SimpleNamespace) -> SimpleNamespace:
    r = redis.Redis.from_url(settings.redis_url)
    p = settings.redis_prefix
    r.sadd(us.social_key("following", VIEWER, p), 100, 101, 102)
    r.sadd(us.social_key("blocked", VIEWER, p), 102)
    r.sadd(us.social_key("muted", VIEWER, p), 201)
    r.sadd(us.social_key("mutedkw", VIEWER, p), "election")
    r.sadd(us.social_key("blocked", 203, p), VIEWER)  # author 203 blocks the viewer
    fakes.write_history(r, VIEWER, p)
    store = PostStore(ThunderConfig.default().store)
    now_s = int(time.time())
    in_net, oon, n = [], [], 0
    bad: dict[str, int] = {}

    def post(author: int, text: str, **kw: object) -> events_pb2.Post:
        nonlocal n
        n += 1
        pid = fakes.pid(age_s=30 * n, seq=n)
        post = events_pb2.Post(post_id=pid, author_id=author, created_at=now_s - 30 * n, text=text, **kw)
        r.set(us.post_key(pid, p), us.encode_post(post))
        r.hset(us.author_key(author, p), mapping={"screen_name": f"u{author}", "follower_count": 10})
        return post

    for i in range(40):
        in_net.append(post(100 + i % 2, f"friend news {i}"))
    for i in range(40):
        oon.append(post(300 + i % 7, f"trending {i}"))
    blocked_friend = post(102, "from a blocked friend")
    bad["blocked"] = blocked_friend.post_id
    in_net.append(blocked_friend)
    bad["muted"] = post(201, "muted author").post_id
    bad["keyword"] = post(300, "The ELECTION results").post_id
    bad["spam"] = post(301, "buy now", labels=["spam"]).post_id
    bad["blocks_viewer"] = post(203, "I block you").post_id
    bad["own"] = post(VIEWER, "my post").post_id
    bad["deleted"] = fakes.pid(age_s=5, seq=999)  # retrieval knows it, Redis does not
    bad["seen"] = post(302, "seen already").post_id
    store.insert([to_record(x) for x in in_net], now_s=now_s)
    oon_ids = [(x.post_id, x.author_id, 0.5) for x in oon]
    oon_ids += [(bad[k], a, 0.5) for k, a in (("muted", 201), ("keyword", 300), ("spam", 301))]
    oon_ids += [(bad["blocks_viewer"], 203, 0.9), (bad["own"], VIEWER, 0.5), (bad["deleted"], 304, 0.9)]
    oon_ids += [(bad["seen"], 302, 0.9)]
    probs = {pid: 0.05 + (pid % 13) / 100 for pid, _, _ in oon_ids}
    probs.update({x.post_id: 0.05 + (x.post_id % 11) / 100 for x in in_net})
    thunder = InProcessThunderClient(InNetworkPostsHandler(store, ThunderConfig.default()))
    return SimpleNamespace(
        r=r, thunder=thunder, retrieval=fakes.Retrieval(oon_ids), ranker=fakes.Ranker(probs), bad=bad
    )


def test_pipeline_on_real_redis(settings: Settings, fakes: SimpleNamespace, unique_topic) -> None:  # type: ignore[no-untyped-def]
    w = seed(settings, fakes)
    topic = unique_topic("served", 1)

    async def go() -> tuple[home_mixer_pb2.GetScoredPostsResponse, home_mixer_pb2.GetScoredPostsResponse]:
        store = RedisUserState(settings.redis_url, settings.redis_prefix)
        clients = HomeMixerClients(
            thunder=w.thunder, retrieval=w.retrieval, ranking=w.ranker, user_state=store
        )
        producer = make_producer(settings)
        pipeline = ScoredPostsPipeline(clients, producer=producer, served_topic=topic)
        handler = ScoredPostsHandler(pipeline, clients)
        first = await handler.get_scored_posts(
            home_mixer_pb2.GetScoredPostsRequest(viewer_id=VIEWER, seen_ids=[w.bad["seen"]])
        )
        await pipeline.drain_side_effects()
        # a bottom request gets different posts: the served history in Redis is read back
        second = await handler.get_scored_posts(
            home_mixer_pb2.GetScoredPostsRequest(viewer_id=VIEWER, is_bottom_request=True)
        )
        await pipeline.drain_side_effects()
        producer.flush(10)
        await clients.close()
        return first, second

    first, second = asyncio.run(go())
    posts = first.scored_posts
    assert len(posts) == 35 and not first.degraded
    assert {p.in_network for p in posts} == {True, False}
    assert not {p.post_id for p in posts} & set(w.bad.values())
    assert [p.score for p in posts] == sorted((p.score for p in posts), reverse=True)
    assert all(p.screen_name == f"u{p.author_id}" for p in posts)
    assert not {p.post_id for p in posts} & {p.post_id for p in second.scored_posts}
    assert second.scored_posts

    # served history: both responses recorded, with a TTL
    key = served_key(VIEWER, settings.redis_prefix)
    history = {int(x) for x in w.r.zrange(key, 0, -1)}
    assert {p.post_id for p in posts} <= history and 0 < w.r.ttl(key) <= 600

    # one ServedEvent per served post on the topic
    c = Consumer(consumer_config(settings, "hm-served-test"))
    c.assign([TopicPartition(topic, 0, 0)])
    events: list[events_pb2.ServedEvent] = []
    deadline = time.time() + 20
    while len(events) < len(posts) + len(second.scored_posts) and time.time() < deadline:
        for m in c.consume(500, 0.5):
            if m.error() is None:
                events.append(events_pb2.ServedEvent.FromString(m.value()))
    c.close()
    first_events = sorted((e for e in events if e.request_id == first.request_id), key=lambda e: e.position)
    assert [e.post_id for e in first_events] == [p.post_id for p in posts]
    assert first_events[0].viewer_id == VIEWER and first_events[0].model_version == "rank-test"
    assert first_events[0].score == pytest.approx(posts[0].score)


def test_pipeline_with_real_ranker(settings: Settings, fakes: SimpleNamespace) -> None:
    """Phoenix's real RankingHandler (tiny, untrained) in process: its probabilities are what the
    weighted scorer combines, and its model version is what the response reports."""
    import torch

    from foryou.app.in_process import RankingHandlerClient
    from home_mixer.scorers.weighted_scorer import combined_score, offset_score
    from phoenix.ranker.config import RankerConfig
    from phoenix.ranker.handler import RankingHandler
    from phoenix.ranker.model import RankerModel

    torch.manual_seed(0)
    w = seed(settings, fakes)
    handler_ranker = RankingHandler(RankerModel(RankerConfig.tiny()), "tiny-untrained")
    from phoenix.ranker.handler import Candidates, History

    one = np.array([1], dtype=np.int64)
    handler_ranker.predict(
        1, History.empty(), Candidates(one, one, one)
    )  # warm torch up (first call is slow)

    async def go() -> home_mixer_pb2.GetDebugScoredPostsResponse:
        store = RedisUserState(settings.redis_url, settings.redis_prefix)
        clients = HomeMixerClients(w.thunder, w.retrieval, RankingHandlerClient(handler_ranker), store)
        handler = ScoredPostsHandler(ScoredPostsPipeline(clients), clients)
        resp = await handler.get_debug_scored_posts(
            home_mixer_pb2.GetDebugScoredPostsRequest(
                query=home_mixer_pb2.GetScoredPostsRequest(viewer_id=VIEWER)
            )
        )
        await clients.close()
        return resp

    resp = asyncio.run(go())
    assert not resp.degraded and resp.model_version == "tiny-untrained"
    selected = [c for c in resp.candidates if c.outcome == "selected"]
    assert len(selected) == 35
    for c in selected:
        probs = dict(c.action_probs)
        assert all(0.0 < p < 1.0 for k, p in probs.items() if k != "dwell_time")
        from home_mixer.candidate import PostCandidate
        from home_mixer.params import DEFAULT_PARAMS

        cand = PostCandidate(
            post_id=c.post_id, author_id=c.author_id, phoenix_scores=probs, in_network=c.in_network
        )
        expected = offset_score(combined_score(cand, c.in_network, DEFAULT_PARAMS), DEFAULT_PARAMS)
        assert c.weighted_score == pytest.approx(expected, rel=1e-5)
