"""Redis Cluster (issue 22): a local 3-master cluster (tests/scaling/conftest.py) holds the user
state; the real ingesters write it, the real services read it, and a whole feed request answers
the same as on a single Redis filled from the same topics."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import redis

from candidate_pipeline import PipelineConfig
from foryou.core import redis_client
from foryou.core.settings import Settings
from foryou.core.user_state import UserStateReader
from foryou.ingest.redis_ingester import IngestConfig
from foryou.ingest.runner import IngestService
from home_mixer.clients import (
    GrpcRankingClient,
    GrpcRetrievalClient,
    GrpcThunderClient,
    HomeMixerClients,
    RedisUserState,
)
from home_mixer.params import DEFAULT_PARAMS
from home_mixer.pipeline import ScoredPostsPipeline
from home_mixer.service import HomeMixerConfig, HomeMixerService
from protos import home_mixer_pb2, home_mixer_pb2_grpc
from thunder.config import ThunderConfig
from thunder.service import ThunderService
from world.config import WorldConfig
from world.generator import generate_world
from world.publish import publish_world

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_cluster_url_forms() -> None:
    t = redis_client.parse("redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2:7001")
    assert (t.kind, t.nodes, t.username, t.password) == (
        "cluster",
        (("10.0.0.1", 7000), ("10.0.0.2", 7001)),
        "u",
        "p@ss",
    )
    s = redis_client.parse("redis+sentinel://:pw@s1:26379,s2:26379/mymaster/2")
    assert (s.kind, s.service, s.db, s.password) == ("sentinel", "mymaster", 2, "pw")
    assert redis_client.parse("redis://127.0.0.1:6379/0").kind == "single"
    with pytest.raises(ValueError, match="service name"):
        redis_client.parse("redis+sentinel://s1:26379")


def test_cluster_multi_key_reads_span_slots(redis_cluster_url: str, unique_prefix: str) -> None:
    r = redis_client.connect(redis_cluster_url)
    assert redis_client.is_cluster(r)
    keys = [f"{unique_prefix}post:{i}" for i in range(200)]  # spread over every node
    owners = {r.keyslot(k) for k in keys}  # type: ignore[attr-defined]
    assert len(owners) > 100
    with pytest.raises(redis.exceptions.RedisClusterException):  # a plain MGET across slots
        r.mget(keys[:50])
    r.mset_nonatomic({k: str(i) for i, k in enumerate(keys)})  # type: ignore[attr-defined]
    assert redis_client.mget(r, [*keys, f"{unique_prefix}missing"]) == [
        str(i).encode() for i in range(200)
    ] + [None]
    r.close()


def train_tiny_retrieval(world: Any, tmp: Path) -> Path:
    from phoenix.retrieval.train import RetrievalTrainConfig, train_retrieval

    cfg = RetrievalTrainConfig.tiny(max_steps=20, progress=False, num_threads=1, eval_max_users=20)
    train_retrieval(world.save(tmp / "world"), tmp / "retrieval", cfg)
    return tmp / "retrieval"


def test_feed_on_redis_cluster_matches_single_redis(
    settings: Settings, redis_cluster_url: str, tmp_path: Path
) -> None:
    world = generate_world(WorldConfig.tiny(seed=0, now_ms=int(time.time() * 1000)))
    retrieval_dir = train_tiny_retrieval(world, tmp_path)
    publish_world(world, settings, progress=False)
    on_cluster = settings.replace(redis_url=redis_cluster_url)
    single = IngestService(settings).start()
    # its own consumer groups: both services read every partition
    cluster = IngestService(on_cluster, IngestConfig(group_prefix="foryou-ingest-cluster")).start()
    try:
        assert single.wait_caught_up(timeout_s=90), single.stats()
        assert cluster.wait_caught_up(timeout_s=90), cluster.stats()
    finally:
        single.stop()
        cluster.stop()

    # the ingesters wrote the same state to both: sequences, posts, social graph, follower counts
    one = UserStateReader(redis.Redis.from_url(settings.redis_url), settings.redis_prefix)
    many = UserStateReader(redis_client.connect(redis_cluster_url), settings.redis_prefix)
    users = world.users["user_id"].to_list()
    posts = world.posts["post_id"].to_list()
    assert many.mget_posts(posts) == one.mget_posts(posts)
    assert sum(p is not None for p in many.mget_posts(posts)) > 0
    authors = users + world.authors["author_id"].to_list()
    assert many.mget_authors(authors) == one.mget_authors(authors)
    assert any(a is not None and a.follower_count > 0 for a in many.mget_authors(authors))
    for u in users:
        assert many.read_social_graph(u) == one.read_social_graph(u)
        assert np.array_equal(many.read_action_sequence(u), one.read_action_sequence(u))

    feeds_single, feeds_cluster = asyncio.run(serve_both(settings, on_cluster, retrieval_dir, users[:6]))
    assert any(f.scored_posts for f in feeds_single)
    for a, b in zip(feeds_single, feeds_cluster, strict=True):
        assert not a.degraded and not b.degraded, (a.degraded, b.degraded)
        assert [(p.post_id, p.source, p.in_network) for p in b.scored_posts] == [
            (p.post_id, p.source, p.in_network) for p in a.scored_posts
        ]
        assert [p.score for p in b.scored_posts] == pytest.approx([p.score for p in a.scored_posts], rel=1e-4)


async def serve_both(
    settings: Settings, on_cluster: Settings, retrieval_dir: Path, viewers: list[int]
) -> tuple[list[Any], list[Any]]:
    """The same Thunder, retrieval (reading histories from the cluster) and ranker behind two
    home_mixers, one on each Redis; each viewer's first feed from both."""
    import torch

    from phoenix.ranker.config import RankerConfig
    from phoenix.ranker.handler import RankingHandler
    from phoenix.ranker.model import RankerModel
    from phoenix.ranker.servicer import serve_ranking
    from phoenix.retrieval.service import RetrievalService

    thunder = ThunderService(settings, ThunderConfig.default())
    await thunder.start()
    retrieval = RetrievalService(on_cluster, str(retrieval_dir))
    await retrieval.start()
    torch.manual_seed(0)
    ranker_server, port = serve_ranking(
        RankingHandler(RankerModel(RankerConfig.tiny()), "tiny"), "127.0.0.1:0"
    )
    out: list[list[Any]] = [[], []]
    try:
        await thunder.wait_caught_up(timeout_s=60)
        await retrieval.wait_caught_up(timeout_s=60)
        services = []
        for s in (settings, on_cluster):
            clients = HomeMixerClients(
                thunder=GrpcThunderClient(thunder.address, timeout_s=3.0),
                retrieval=GrpcRetrievalClient(retrieval.address, timeout_s=3.0),
                ranking=GrpcRankingClient(f"127.0.0.1:{port}", timeout_s=3.0),
                user_state=RedisUserState(s.redis_url, s.redis_prefix, timeout_s=3.0),
            )
            names = [n for stage in ScoredPostsPipeline(clients).components().values() for n in stage]
            pipeline = PipelineConfig(request_deadline_s=8.0, component_timeouts=dict.fromkeys(names, 4.0))
            # cold-start Thompson draws are seeded by the request id (random per request): off, so
            # two requests for one viewer are comparable
            params = dataclasses.replace(DEFAULT_PARAMS, enable_cold_start_thompson_sampling=False)
            config = HomeMixerConfig(pipeline=pipeline, params=params, publish_served=False)
            services.append(HomeMixerService(s, clients, config))
        for hm in services:
            await hm.start()
        try:
            # the same popular-posts data on both (engagement counts, hourly buckets)
            hour = int(time.time() * 1000) // 3_600_000
            popular = [
                await hm.clients.user_state.popular_posts(range(hour - 48, hour + 1), 50) for hm in services
            ]
            assert popular[0] and popular[0] == popular[1]
            channels = [grpc.aio.insecure_channel(hm.address) for hm in services]
            stubs = [home_mixer_pb2_grpc.ScoredPostsServiceStub(ch) for ch in channels]
            for v in viewers:  # interleaved: both answer at the same moment (recency terms agree)
                req = home_mixer_pb2.GetScoredPostsRequest(viewer_id=v)
                for i, stub in enumerate(stubs):
                    out[i].append(await stub.GetScoredPosts(req, timeout=10))
            for ch in channels:
                await ch.close()
        finally:
            for hm in services:
                await hm.stop()
    finally:
        await retrieval.stop()
        ranker_server.stop(0.5)
        await thunder.stop()
    return out[0], out[1]
