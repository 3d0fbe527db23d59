"""End to end on the real broker and Redis: a tiny synthetic world is published to Kafka, the real
ingesters fill Redis, the real Thunder service consumes `posts`, and home_mixer serves feeds over
gRPC calling every dependency over gRPC. Served impressions land on the `served` topic.

Phoenix runs as its real services over gRPC: RetrievalService (a tiny two-tower model trained for a
few steps on the world; its FAISS index consumes `posts`) and RankingService (a tiny untrained
model). The same running services then answer with one dependency at a time unreachable."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import grpc
import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition

from candidate_pipeline import PipelineConfig
from foryou.core.kafka import consumer_config
from foryou.core.net import free_port
from foryou.core.settings import Settings
from foryou.ingest.runner import IngestService
from home_mixer.clients import (
    GrpcRankingClient,
    GrpcRetrievalClient,
    GrpcThunderClient,
    HomeMixerClients,
    RedisUserState,
)
from home_mixer.pipeline import ScoredPostsPipeline
from home_mixer.service import HomeMixerConfig, HomeMixerService
from protos import events_pb2, home_mixer_pb2, home_mixer_pb2_grpc
from thunder.config import ThunderConfig
from thunder.service import ThunderService
from world.config import WorldConfig
from world.generator import generate_world
from world.publish import publish_world

pytestmark = [pytest.mark.integration, pytest.mark.slow]


RANKER_VERSION = "tiny-untrained-e2e"


def train_tiny_retrieval(world: Any, tmp: Path) -> Path:
    """A tiny two-tower model trained for a few steps on the world's engagement log (~2 s): the
    feed test needs a working model, not a good one."""
    from phoenix.retrieval.train import RetrievalTrainConfig, train_retrieval

    world_dir = world.save(tmp / "world")
    cfg = RetrievalTrainConfig.tiny(max_steps=30, progress=False, num_threads=1, eval_max_users=20)
    train_retrieval(world_dir, tmp / "retrieval", cfg)
    return tmp / "retrieval"


async def start_phoenix(settings: Settings, retrieval_dir: Path) -> tuple[Any, Any, str]:
    """(retrieval service, ranker server, ranker address): phoenix's real RetrievalService (the
    tiny trained two-tower model; its index is filled from the `posts` topic) and its real
    RankingService (tiny untrained model), both over gRPC."""
    import numpy as np
    import torch

    from phoenix.ranker.config import RankerConfig
    from phoenix.ranker.handler import Candidates, History, RankingHandler
    from phoenix.ranker.model import RankerModel
    from phoenix.ranker.servicer import serve_ranking
    from phoenix.retrieval.service import RetrievalService

    retrieval = RetrievalService(settings, str(retrieval_dir))
    await retrieval.start()
    torch.manual_seed(0)
    ranking = RankingHandler(RankerModel(RankerConfig.tiny()), RANKER_VERSION)
    one = np.array([1], dtype=np.int64)
    ranking.predict(1, History.empty(), Candidates(one, one, one))  # first torch call is slow
    ranker_server, port = serve_ranking(ranking, "127.0.0.1:0")
    return retrieval, ranker_server, f"127.0.0.1:{port}"


def pick_viewers(world: Any) -> list[int]:
    f = world.follows
    follows = f.filter(pl.col("kind") == "follow").group_by("user_id").len()
    enough = set(follows.filter(pl.col("len") >= 3)["user_id"].to_list())
    special = set(world.muted_keywords["user_id"].to_list()) | set(
        f.filter(pl.col("kind").is_in(["block", "mute"]))["user_id"].to_list()
    )
    chosen = sorted(enough & special)[:4]
    chosen += sorted(enough - set(chosen))[: 6 - len(chosen)]
    return chosen


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def test_feeds_end_to_end_over_grpc(settings: Settings, tmp_path: Path) -> None:
    world = generate_world(WorldConfig.tiny(seed=0, now_ms=int(time.time() * 1000)))
    retrieval_dir = train_tiny_retrieval(world, tmp_path)
    publish_world(world, settings, progress=False)
    ingest = IngestService(settings).start()
    try:
        assert ingest.wait_caught_up(timeout_s=90), ingest.stats()
        responses, degraded = asyncio.run(serve_and_query(settings, world, retrieval_dir))
    finally:
        ingest.stop()

    texts = dict(zip(world.posts["post_id"].to_list(), world.posts["text"].to_list(), strict=True))
    got_in = got_oon = 0
    removed_by: dict[str, int] = {}
    for viewer, graph, first, second, seen, debug in responses:
        for c in debug.candidates:
            if c.outcome == "filtered":
                removed_by[c.filtered_by] = removed_by.get(c.filtered_by, 0) + 1
        posts = first.scored_posts
        assert posts, f"empty feed for {viewer}"
        assert not first.degraded, first.degraded
        assert [p.score for p in posts] == sorted((p.score for p in posts), reverse=True)
        got_in += sum(p.in_network for p in posts)
        # out-of-network posts come from the real retrieval service
        got_oon += sum(not p.in_network and p.source == "PhoenixSource" for p in posts)
        for p in list(posts) + list(second.scored_posts):
            assert p.author_id != viewer
            assert p.author_id not in graph.blocked | graph.muted
            shown = texts[p.retweeted_post_id] if p.HasField("retweeted_post_id") else texts[p.post_id]
            assert not words(shown) & set(graph.muted_keywords), (viewer, shown)
            assert p.in_network == (p.author_id in graph.following)
        assert second.scored_posts and not {p.post_id for p in second.scored_posts} & seen
    assert got_in > 0 and got_oon > 0
    # the invariants above were tested against candidates that really were there to remove
    assert removed_by.get("MutedKeywordFilter", 0) > 0 and removed_by.get("AuthorSocialgraphFilter", 0) > 0
    print(f"viewers={len(responses)} removed_by={removed_by}")
    check_degraded(degraded)


def check_degraded(degraded: dict[str, home_mixer_pb2.GetScoredPostsResponse]) -> None:
    """One dependency unreachable at a time: the feed still answers (within the RPC's timeout),
    says what it lacked, and the metric counted it (Redis down: answered empty, fail closed)."""
    thunder = degraded["thunder"]
    assert thunder.degraded == ["thunder"]
    # the popular-posts source (engagement counts in Redis) still answers without either service
    sources = {p.source for p in thunder.scored_posts}
    assert (
        thunder.scored_posts
        and "PhoenixSource" in sources
        and sources <= {"PhoenixSource", "PopularPostsSource"}
    )
    retrieval = degraded["retrieval"]
    assert retrieval.degraded == ["retrieval"]
    sources = {p.source for p in retrieval.scored_posts}
    assert retrieval.scored_posts and "ThunderSource" in sources
    assert sources <= {"ThunderSource", "PopularPostsSource"}
    assert all(p.in_network for p in retrieval.scored_posts if p.source == "ThunderSource")
    ranker = degraded["ranker"]
    assert ranker.degraded == ["ranker"] and ranker.model_version == ""
    posts = ranker.scored_posts
    assert posts and {"ThunderSource", "PhoenixSource"} <= {p.source for p in posts}
    assert [p.score for p in posts] == sorted((p.score for p in posts), reverse=True)
    by_author: dict[int, list[int]] = {}
    for p in posts:
        by_author.setdefault(p.author_id, []).append(p.post_id)
    assert all(ids == sorted(ids, reverse=True) for ids in by_author.values())  # recency order
    redis_down = degraded["redis"]
    # retrieval (its own history read) still answers, but without post data and the viewer's safety
    # data nothing can be cleared: the safety filters fail closed and say why
    assert redis_down.degraded == ["redis", "IneligibleSubscriptionFilter: subscription data unavailable"]
    assert not redis_down.scored_posts


async def serve_and_query(
    settings: Settings, world: Any, retrieval_dir: Path
) -> tuple[list[tuple[Any, ...]], dict[str, home_mixer_pb2.GetScoredPostsResponse]]:
    thunder = ThunderService(settings, ThunderConfig.default())
    await thunder.start()
    retrieval, ranker_server, ranker_addr = await start_phoenix(settings, retrieval_dir)
    out = []
    degraded: dict[str, home_mixer_pb2.GetScoredPostsResponse] = {}
    try:
        await thunder.wait_caught_up(timeout_s=60)
        await retrieval.wait_caught_up(timeout_s=60)
        addresses = {
            "thunder": thunder.address,
            "retrieval": retrieval.address,
            "ranker": ranker_addr,
            "redis": settings.redis_url,
        }
        clients = patient_clients(settings, addresses)
        hm = HomeMixerService(settings, clients, patient_config(clients))
        await hm.start()
        state = RedisUserState(settings.redis_url, settings.redis_prefix)
        viewers = pick_viewers(world)
        try:
            async with grpc.aio.insecure_channel(hm.address) as ch:
                stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
                for viewer in viewers:
                    graph = await state.read_social_graph(viewer)
                    first = await stub.GetScoredPosts(
                        home_mixer_pb2.GetScoredPostsRequest(viewer_id=viewer), timeout=10
                    )
                    seen = {p.post_id for p in first.scored_posts[:3]}
                    second = await stub.GetScoredPosts(
                        home_mixer_pb2.GetScoredPostsRequest(viewer_id=viewer, seen_ids=sorted(seen)),
                        timeout=10,
                    )
                    debug = await stub.GetDebugScoredPosts(
                        home_mixer_pb2.GetDebugScoredPostsRequest(
                            query=home_mixer_pb2.GetScoredPostsRequest(viewer_id=viewer)
                        ),
                        timeout=10,
                    )
                    out.append((viewer, graph, first, second, seen, debug))
        finally:
            await state.close()
            await hm.stop()
        for dep in addresses:
            dead = f"127.0.0.1:{free_port()}"
            addrs = dict(addresses, **{dep: f"redis://{dead}/0" if dep == "redis" else dead})
            before = degraded_count(dep)
            degraded[dep] = await query_once(settings, addrs, viewers[0])
            assert degraded_count(dep) == before + 1, dep
    finally:
        await retrieval.stop()
        ranker_server.stop(0.5)
        await thunder.stop()

    # every served post of the first response is on the served topic, in position order
    viewer, _, first, _, _, _ = out[0]
    topic = settings.topic(settings.served_topic)
    c = Consumer(consumer_config(settings, "e2e-served"))
    c.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
    events: list[events_pb2.ServedEvent] = []
    deadline = time.time() + 20
    while time.time() < deadline:
        events += [
            events_pb2.ServedEvent.FromString(m.value()) for m in c.consume(1000, 0.5) if not m.error()
        ]
        if sum(e.request_id == first.request_id for e in events) >= len(first.scored_posts):
            break
    c.close()
    mine = sorted((e for e in events if e.request_id == first.request_id), key=lambda e: e.position)
    assert [e.post_id for e in mine] == [p.post_id for p in first.scored_posts]
    assert all(e.viewer_id == viewer and e.model_version == RANKER_VERSION for e in mine)
    return out, degraded


async def query_once(
    settings: Settings, addresses: dict[str, str], viewer: int
) -> home_mixer_pb2.GetScoredPostsResponse:
    """One GetScoredPosts over gRPC through a home_mixer wired to `addresses` (the dead one fails
    fast: connection refused)."""
    clients = patient_clients(settings, addresses)
    hm = HomeMixerService(settings, clients, patient_config(clients, publish_served=False))
    await hm.start()
    try:
        async with grpc.aio.insecure_channel(hm.address) as ch:
            stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
            req = home_mixer_pb2.GetScoredPostsRequest(viewer_id=viewer)
            return await stub.GetScoredPosts(req, timeout=10)
    finally:
        await hm.stop()


def patient_clients(settings: Settings, addresses: dict[str, str]) -> HomeMixerClients:
    """Clients with generous timeouts: this test checks what the feed contains, on a shared machine
    with every service in one process; timeouts and deadlines are tested elsewhere
    (test_handler_degradation.py, test_service_grpc.py)."""
    return HomeMixerClients(
        thunder=GrpcThunderClient(addresses["thunder"], timeout_s=3.0),
        retrieval=GrpcRetrievalClient(addresses["retrieval"], timeout_s=3.0),
        ranking=GrpcRankingClient(addresses["ranker"], timeout_s=3.0),
        user_state=RedisUserState(addresses["redis"], settings.redis_prefix, timeout_s=3.0),
    )


def patient_config(clients: HomeMixerClients, **kw: Any) -> HomeMixerConfig:
    names = [n for stage in ScoredPostsPipeline(clients).components().values() for n in stage]
    pipeline = PipelineConfig(request_deadline_s=8.0, component_timeouts=dict.fromkeys(names, 4.0))
    return HomeMixerConfig(pipeline=pipeline, **kw)


def degraded_count(dep: str) -> float:
    from prometheus_client import REGISTRY

    labels = {"service": "home_mixer", "dependency": dep}
    return REGISTRY.get_sample_value("foryou_degraded_total", labels) or 0.0
