"""Thunder figures: in-process lookup latency over 1M posts from 200k authors (200 / 1,000 / 5,000
followees), the same with recent inserts not yet folded into the snapshot, gRPC round trip for
1,000 followees over that store, resident bytes per post, and ingest rate from the real broker.

Usage: python bench/thunder_bench.py [--posts 1000000] [--events 300000]
Uses FORYOU_KAFKA_BOOTSTRAP when set, else starts an embedded broker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import tempfile
import time
from collections.abc import Iterator

import grpc
import numpy as np

from foryou.app import infra
from foryou.core.grpc_server import GrpcServer
from foryou.core.kafka import ensure_topics, make_producer
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from protos import events_pb2 as ev
from protos import thunder_pb2_grpc
from thunder.config import ThunderConfig
from thunder.handler import InNetworkPostsHandler
from thunder.request import make_request
from thunder.service import ThunderService
from thunder.servicer import SERVICE_NAME, InNetworkPostsServicer
from thunder.store import PostRecord, PostStore

N_AUTHORS, VIEWER = 200_000, 7


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def records(lo: int, hi: int, now_s: int, n_posts: int, rng: np.random.Generator) -> list[PostRecord]:
    """Posts lo..hi-1 of the synthetic stream: 60% originals (1 in 7 with video), 15% reposts,
    25% replies; replies and reposts point at an earlier post, ids increase with time."""
    n = hi - lo
    authors = rng.integers(1, N_AUTHORS + 1, n)
    ages = (170_000 * (1 - np.arange(lo, hi) / n_posts)).astype(np.int64)
    kind = rng.random(n)
    parents = (rng.random(n) * np.arange(lo, hi)).astype(np.int64) + 1
    parent_authors = rng.integers(1, N_AUTHORS + 1, n)
    out = []
    for i in range(n):
        k, a, t, pid = kind[i], int(authors[i]), now_s - int(ages[i]), lo + i + 1
        if k < 0.6:
            out.append(PostRecord(pid, a, t, has_video=k < 0.085))
        elif k < 0.75:
            out.append(
                PostRecord(pid, a, t, is_retweet=True, source_post_id=int(parents[i]), source_user_id=3)
            )
        else:
            p = int(parents[i])
            out.append(
                PostRecord(
                    pid,
                    a,
                    t,
                    is_reply=True,
                    in_reply_to_post_id=p,
                    in_reply_to_user_id=int(parent_authors[i]),
                    conversation_id=p,
                )
            )
    return out


def build_store(n_posts: int, now_s: int, rng: np.random.Generator, stream: int) -> PostStore:
    gc.collect()
    rss0 = rss_bytes()
    store = PostStore(capacity=1024)
    t0 = time.perf_counter()
    for lo in range(0, n_posts, 50_000):
        store.insert(records(lo, min(n_posts, lo + 50_000), now_s, stream, rng), now_s=now_s)
    store.rebuild_snapshot()
    took = time.perf_counter() - t0
    gc.collect()
    per_post = (rss_bytes() - rss0) / store.num_posts
    print(
        f"store: {store.num_posts:,} posts from {store.num_authors:,} authors built in {took:.1f} s; "
        f"resident growth {per_post:.0f} B/post (store's own estimate "
        f"{store.bytes_estimate() / store.num_posts:.0f} B/post)"
    )
    return store


def pct(lat: list[float]) -> str:
    a = np.array(lat) * 1000
    return f"p50 {np.percentile(a, 50):.3f} ms  p99 {np.percentile(a, 99):.3f} ms"


def lookup_bench(store: PostStore, now_s: int, rng: np.random.Generator, label: str = "") -> None:
    """Wall clock, and this thread's CPU time (what the query costs when the machine's cores are
    shared with other work: a wall-clock tail there is mostly time spent descheduled)."""
    for n in (200, 1_000, 5_000):
        lat, cpu, got = [], [], 0
        for q in range(520):
            fol = rng.integers(1, N_AUTHORS + 1, n).tolist()
            c0, t0 = time.thread_time(), time.perf_counter()
            got = len(store.get_posts(VIEWER, fol, now_s=now_s))
            if q >= 20:
                lat.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
        print(f"in-process lookup{label}, {n:>5} followees ({got} posts): wall {pct(lat)} | cpu {pct(cpu)}")


async def grpc_bench(store: PostStore, rng: np.random.Generator) -> None:
    server = GrpcServer("127.0.0.1:0")
    handler = InNetworkPostsHandler(store, ThunderConfig.default(qps_limit=0))
    server.add(
        thunder_pb2_grpc.add_InNetworkPostsServiceServicer_to_server,
        InNetworkPostsServicer(handler),
        SERVICE_NAME,
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            stub = thunder_pb2_grpc.InNetworkPostsServiceStub(ch)
            lat, n = [], 0
            for q in range(320):
                fol = rng.integers(1, N_AUTHORS + 1, 1_000).tolist()
                if q == 20:
                    c0 = time.process_time()
                t0 = time.perf_counter()
                resp = await stub.GetInNetworkPosts(make_request(VIEWER, fol), timeout=5)
                if q >= 20:
                    lat.append(time.perf_counter() - t0)
                n = len(resp.posts)
            cpu_ms = (time.process_time() - c0) / len(lat) * 1000
        print(
            f"gRPC round trip (client + server in one process), 1,000 followees ({n} posts): {pct(lat)}"
            f" | process cpu {cpu_ms:.2f} ms/call"
        )
    finally:
        await server.stop(0.5)


@contextlib.contextmanager
def broker(tmp: str) -> Iterator[Settings]:
    base = Settings.from_env(
        data_dir=tmp,
        topic_prefix=f"bench{int(time.time())}.",
        partitions=4,
        kafka_session_timeout_ms=2000,
        consumer_batch_size=10_000,
    )
    if base.kafka_bootstrap:
        ensure_topics(base, base.topics())
        yield base
        return
    with infra.EmbeddedInfra(base) as s:
        ensure_topics(s, s.topics())
        yield s


TEXTS = (
    "just posted something " * 3,
    "ça marche très bien 👍",
    "new video 🎬🔥 check it",
    "short",
    "x" * 180,
)


def post_event(i: int, n_events: int, now_ms: int, ids: list[int]) -> tuple[int, ev.PostEvent]:
    """Event i of the ingest stream: 60% originals (1 in 7 with a video and its duration), 15%
    reposts, 24% replies (to earlier posts), 1% deletes of earlier posts; texts of 5-180 chars,
    a third with non-ASCII characters. Returns (author, event)."""
    a = i % 50_000 + 1
    ts = now_ms - (n_events - i)
    pid = make_id(ts, i & 0xFFF)
    ids.append(pid)
    k = (i * 7919) % 100
    earlier = ids[(i * 104_729) % len(ids)]
    if k == 99:
        return a, ev.PostEvent(delete=ev.PostDelete(post_id=earlier, author_id=a, deleted_at_ms=ts))
    post = ev.Post(post_id=pid, author_id=a, created_at=ts // 1000, text=TEXTS[i % len(TEXTS)])
    if k < 60:
        if k < 9:
            post.has_video, post.video_duration_ms = True, 12_000
    elif k < 75:
        post.is_retweet, post.source_post_id, post.source_user_id = True, earlier, a % 977 + 1
    else:
        post.is_reply, post.in_reply_to_post_id, post.in_reply_to_user_id = True, earlier, a % 977 + 1
        post.conversation_id = earlier
    return a, ev.PostEvent(create=post)


def ingest_bench(n_events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, broker(tmp) as settings:
        producer = make_producer(settings, **{"linger.ms": 20})
        now_ms = int(time.time() * 1000)
        topic = settings.topic("posts")
        t0 = time.perf_counter()
        ids: list[int] = []
        size = 0
        for i in range(n_events):
            a, event = post_event(i, n_events, now_ms, ids)
            value = event.SerializeToString()
            size += len(value)
            producer.produce(topic, key=str(a).encode(), value=value)
            if i % 20_000 == 0:
                producer.poll(0)
        producer.flush(60)
        print(
            f"publish: {n_events:,} PostEvents (mean {size / n_events:.0f} B) in "
            f"{time.perf_counter() - t0:.1f} s"
        )

        async def run() -> None:
            svc = ThunderService(settings, ThunderConfig.default(catchup_max_lag=0))
            await svc.start()
            try:
                while svc.consumer.stats.consumed == 0:
                    await asyncio.sleep(0.001)
                t_first, c_first = time.perf_counter(), time.process_time()
                first = svc.consumer.stats.consumed
                while svc.consumer.stats.consumed < n_events:
                    await asyncio.sleep(0.005)
                took, cpu = time.perf_counter() - t_first, time.process_time() - c_first
                n = n_events - first
                await svc.wait_caught_up(60)
                print(
                    f"ingest from the real broker (consume + decode + insert, after the first batch): "
                    f"{n:,} events in {took:.2f} s = {n / took:,.0f} events/s wall; process cpu "
                    f"{cpu / n * 1e6:.2f} us/event (= {n / cpu:,.0f} events per cpu-second); "
                    f"caught up -> SERVING; store holds {svc.store.num_posts:,}"
                )
            finally:
                await svc.stop()

        asyncio.run(run())


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.1f} {b:.1f} {c:.1f} on {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=300_000)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    print(load())
    rng = np.random.default_rng(0)
    now_s = int(time.time())
    # the stream is generated for posts + 20k, so the last 20k (inserted later) are the newest
    store = build_store(args.posts, now_s, rng, args.posts + 20_000)
    lookup_bench(store, now_s, rng)
    # serving state between snapshot folds: the newest 20k posts only in the per-author delta
    added = store.insert(
        records(args.posts, args.posts + 20_000, now_s, args.posts + 20_000, rng), now_s=now_s
    )
    print(f"+{added:,} posts inserted, {store.delta_size:,} list entries not yet folded into the snapshot")
    lookup_bench(store, now_s, rng, label=" (+20k unfolded inserts)")
    store.rebuild_snapshot()
    asyncio.run(grpc_bench(store, rng))
    del store
    gc.collect()
    ingest_bench(args.events)
    print(load())


if __name__ == "__main__":
    main()
