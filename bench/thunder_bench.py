"""Thunder figures: in-process lookup latency over 1M posts from 200k authors, gRPC round trip,
ingest rate from the real broker, and memory per post. Usage: python bench/thunder_bench.py"""

from __future__ import annotations

import asyncio
import logging
import resource
import time

import numpy as np

from foryou import infra
from foryou.kafka import ensure_topics, make_producer
from foryou.settings import Settings
from foryou.snowflake import make_id
from protos import events_pb2 as ev
from protos import thunder_pb2_grpc
from thunder.client import make_request
from thunder.config import ThunderConfig
from thunder.service import ThunderService
from thunder.store import PostRecord, PostStore

N_POSTS, N_AUTHORS, VIEWER = 1_000_000, 200_000, 7


def build_store(now_s: int, rng: np.random.Generator) -> PostStore:
    authors = rng.integers(1, N_AUTHORS + 1, N_POSTS)
    ages = np.sort(rng.integers(0, 170_000, N_POSTS))[::-1]  # ids increase with time
    kind = rng.random(N_POSTS)
    # replies and reposts point at an earlier post, as they do in a real stream
    parents = (rng.random(N_POSTS) * np.arange(N_POSTS)).astype(np.int64) + 1
    recs = []
    for i in range(N_POSTS):
        k, a, t = kind[i], int(authors[i]), now_s - int(ages[i])
        if k < 0.7:
            recs.append(PostRecord(i + 1, a, t, has_video=k < 0.1))
        elif k < 0.85:
            recs.append(
                PostRecord(i + 1, a, t, is_retweet=True, source_post_id=int(parents[i]), source_user_id=3)
            )
        else:
            recs.append(
                PostRecord(
                    i + 1,
                    a,
                    t,
                    is_reply=True,
                    in_reply_to_post_id=int(parents[i]),
                    in_reply_to_user_id=int(authors[parents[i]]),
                    conversation_id=int(parents[i]),
                )
            )
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = PostStore(capacity=N_POSTS)
    for j in range(0, N_POSTS, 20_000):
        store.insert(recs[j : j + 20_000], now_s=now_s)
    del recs
    store.rebuild_snapshot()  # the service does this in the background every few seconds
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"store: {store.num_posts:,} posts, {store.num_authors:,} authors; estimate "
        f"{store.bytes_estimate() / store.num_posts:.0f} B/post; max-RSS growth while inserting "
        f"{(rss1 - rss0) * 1024 / store.num_posts:.0f} B/post (includes the input records)"
    )
    return store


def pct(lat: list[float]) -> str:
    a = np.array(lat) * 1000
    return f"p50 {np.percentile(a, 50):.3f} ms  p99 {np.percentile(a, 99):.3f} ms"


def lookup_bench(store: PostStore, now_s: int, rng: np.random.Generator) -> None:
    for n in (200, 1_000, 5_000):
        lat, got = [], 0
        for q in range(320):
            fol = rng.integers(1, N_AUTHORS + 1, n).tolist()
            t0 = time.perf_counter()
            got = len(store.get_posts(VIEWER, fol, now_s=now_s))
            if q >= 20:
                lat.append(time.perf_counter() - t0)
        print(
            f"in-process lookup, {n:>5} followees ({got} posts): {pct(lat)}   (budget at 1,000: p99 <= 1 ms)"
        )


async def grpc_bench(svc: ThunderService, rng: np.random.Generator, n_authors: int) -> None:
    import grpc

    async with grpc.aio.insecure_channel(svc.address) as ch:
        stub = thunder_pb2_grpc.InNetworkPostsServiceStub(ch)
        lat = []
        for q in range(220):
            fol = rng.integers(1, n_authors + 1, 1_000).tolist()
            t0 = time.perf_counter()
            await stub.GetInNetworkPosts(make_request(VIEWER, fol), timeout=5)
            if q >= 20:
                lat.append(time.perf_counter() - t0)
    print(f"gRPC round trip, 1,000 followees: {pct(lat)}")


def ingest_bench(n_events: int = 300_000) -> None:
    settings = Settings(
        data_dir="/tmp/thunder-bench",
        topic_prefix=f"bench{int(time.time())}.",
        partitions=4,
        kafka_session_timeout_ms=2000,
        consumer_batch_size=20_000,
    )
    state = infra.up(settings)
    settings = settings.replace(kafka_bootstrap=state.kafka_bootstrap, redis_url=state.redis_url)
    ensure_topics(settings, settings.topics())
    try:
        producer = make_producer(settings)
        now_ms = int(time.time() * 1000)
        topic = settings.topic("posts")
        for i in range(n_events):
            a = i % 20_000 + 1
            ts = now_ms - (n_events - i)
            post = ev.Post(post_id=make_id(ts, i & 0xFFFF), author_id=a, created_at=ts // 1000)
            producer.produce(topic, key=str(a).encode(), value=ev.PostEvent(create=post).SerializeToString())
            if i % 50_000 == 0:
                producer.poll(0)
        producer.flush(60)

        async def run() -> None:
            svc = ThunderService(settings, ThunderConfig.default(catchup_max_lag=0))
            t0 = time.perf_counter()
            await svc.start()
            while svc.consumer.stats.consumed == 0:
                await asyncio.sleep(0.001)
            t_first = time.perf_counter()  # the consumer-group join is over
            while svc.consumer.stats.consumed < n_events:
                await asyncio.sleep(0.005)
            took = time.perf_counter() - t_first
            print(
                f"ingest from the real broker (decode + insert): {n_events:,} events in {took:.2f} s = "
                f"{n_events / took:,.0f} events/s (budget >= 100k/s); group join {t_first - t0:.2f} s; "
                f"store holds {svc.store.num_posts:,}"
            )
            await grpc_bench(svc, np.random.default_rng(1), 20_000)
            await svc.stop()

        asyncio.run(run())
    finally:
        infra.down(settings)


def main() -> None:
    logging.disable(logging.WARNING)
    rng = np.random.default_rng(0)
    now_s = int(time.time())
    store = build_store(now_s, rng)
    lookup_bench(store, now_s, rng)
    del store
    ingest_bench()


if __name__ == "__main__":
    main()
