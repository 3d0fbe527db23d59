"""End to end on the real broker and Redis: a tiny synthetic world is published to Kafka, the real
ingesters fill Redis, the real Thunder service consumes `posts`, and home_mixer serves feeds over
gRPC calling every dependency over gRPC. Served impressions land on the `served` topic.

The ranker is phoenix's real RankingService (a tiny untrained model) over gRPC. Retrieval is a small
gRPC stand-in in this file (popularity order) until phoenix ships its RetrievalService; the transport,
wiring and every feed invariant are exercised either way."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import grpc
import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition

from foryou.grpc_server import GrpcServer
from foryou.ingest.runner import IngestService
from foryou.kafka import consumer_config
from foryou.publish import publish_world
from foryou.settings import Settings
from home_mixer.clients import RedisUserState, build_clients_from_addresses
from home_mixer.service import HomeMixerService
from phoenix.world.config import WorldConfig
from phoenix.world.generator import generate_world
from protos import events_pb2, home_mixer_pb2, home_mixer_pb2_grpc, phoenix_pb2, phoenix_pb2_grpc
from thunder.config import ThunderConfig
from thunder.service import ThunderService

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class StandInRetrieval(phoenix_pb2_grpc.RetrievalServiceServicer):
    def __init__(self, posts: pl.DataFrame) -> None:
        live = posts.filter(pl.col("deleted_at_ms") == 0).sort("popularity", descending=True)
        self.posts = list(zip(live["post_id"].to_list(), live["author_id"].to_list(), strict=True))

    async def Retrieve(self, request: Any, context: Any) -> phoenix_pb2.RetrieveResponse:  # noqa: N802
        excl = set(request.exclude_post_ids)
        out = phoenix_pb2.RetrieveResponse(model_version="stand-in-retrieval")
        for p, a in self.posts:
            if p not in excl and a != request.user_id:
                out.candidates.add(post_id=p, author_id=a, score=0.5)
            if len(out.candidates) >= (request.top_k or 1000):
                break
        return out


RANKER_VERSION = "tiny-untrained-e2e"


async def start_phoenix(world: Any) -> tuple[list[Any], str, str]:
    """(stop callables, retrieval address, ranker address). The ranker is phoenix's real
    RankingService (tiny untrained model) over gRPC; retrieval is the stand-in until phoenix ships it."""
    import numpy as np
    import torch

    from phoenix.ranker.config import RankerConfig
    from phoenix.ranker.handler import Candidates, History, RankingHandler
    from phoenix.ranker.model import RankerModel
    from phoenix.ranker.servicer import serve_ranking

    server = GrpcServer("127.0.0.1:0")
    server.add(
        phoenix_pb2_grpc.add_RetrievalServiceServicer_to_server,
        StandInRetrieval(world.posts),
        "foryou.phoenix.RetrievalService",
    )
    await server.start()
    torch.manual_seed(0)
    ranking = RankingHandler(RankerModel(RankerConfig.tiny()), RANKER_VERSION)
    one = np.array([1], dtype=np.int64)
    ranking.predict(1, History.empty(), Candidates(one, one, one))  # first torch call is slow
    ranker_server, port = serve_ranking(ranking, "127.0.0.1:0")

    async def stop_all() -> None:
        await server.stop(0.5)
        ranker_server.stop(0.5)

    return [stop_all], server.address, f"127.0.0.1:{port}"


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


def test_feeds_end_to_end_over_grpc(settings: Settings) -> None:
    world = generate_world(WorldConfig.tiny(seed=0, now_ms=int(time.time() * 1000)))
    publish_world(world, settings, progress=False)
    ingest = IngestService(settings).start()
    try:
        assert ingest.wait_caught_up(timeout_s=90), ingest.stats()
        responses = asyncio.run(serve_and_query(settings, world))
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
        got_oon += sum(not p.in_network for p in posts)
        for p in list(posts) + list(second.scored_posts):
            assert p.author_id != viewer
            assert p.author_id not in graph.blocked | graph.muted
            shown = texts[p.retweeted_post_id] if p.HasField("retweeted_post_id") else texts[p.post_id]
            assert not words(shown) & set(graph.muted_keywords), (viewer, shown)
            assert p.in_network == (p.author_id in graph.following)
        assert not {p.post_id for p in second.scored_posts} & seen
    assert got_in > 0 and got_oon > 0
    # the invariants above were tested against candidates that really were there to remove
    assert removed_by.get("MutedKeywordFilter", 0) > 0 and removed_by.get("AuthorSocialgraphFilter", 0) > 0
    print(f"viewers={len(responses)} removed_by={removed_by}")


async def serve_and_query(settings: Settings, world: Any) -> list[tuple[Any, ...]]:
    thunder = ThunderService(settings, ThunderConfig.default())
    await thunder.start()
    phoenix_servers, retrieval_addr, ranker_addr = await start_phoenix(world)
    out = []
    try:
        await thunder.wait_caught_up(timeout_s=60)
        clients = build_clients_from_addresses(
            thunder.address, retrieval_addr, ranker_addr, settings.redis_url, settings.redis_prefix
        )
        hm = HomeMixerService(settings, clients)
        await hm.start()
        state = RedisUserState(settings.redis_url, settings.redis_prefix)
        try:
            async with grpc.aio.insecure_channel(hm.address) as ch:
                stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
                for viewer in pick_viewers(world):
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
    finally:
        for stop in phoenix_servers:
            await stop()
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
    return out
