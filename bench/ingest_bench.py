"""Ingest figures: world generation time, publish rate, events/s of each Redis ingester from the real
broker into the real Redis (full replay of its topic, decode + apply + Redis writes), and read
latencies (MGET of 2,000 post records, social graph, action sequence).

Usage: python bench/ingest_bench.py [--impressions 150000] [--reads 300]
Uses FORYOU_KAFKA_BOOTSTRAP / FORYOU_REDIS_URL when set, else starts an embedded broker + Redis."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import tempfile
import time
from collections.abc import Iterator

import numpy as np
import redis

from foryou.app import infra
from foryou.core import user_state as us
from foryou.core.kafka import BatchConsumer
from foryou.core.settings import Settings
from foryou.ingest.action_sequence_ingester import ActionSequenceIngester
from foryou.ingest.post_content_ingester import PostContentIngester
from foryou.ingest.redis_ingester import IngestConfig
from foryou.ingest.social_graph_ingester import SocialGraphIngester
from world import WorldConfig, generate_world
from world.publish import publish_world


@contextlib.contextmanager
def _infra(tmp: str) -> Iterator[Settings]:
    base = Settings.from_env(data_dir=tmp, topic_prefix=f"bench{int(time.time())}.", redis_prefix="bench:")
    if base.kafka_bootstrap and base.redis_url:
        yield base
        return
    with infra.EmbeddedInfra(base) as s:
        yield s


def _drain(consumer: BatchConsumer, expected: int, timeout_s: float = 300.0) -> tuple[int, float]:
    """Consume until `expected` messages were applied; returns (consumed, seconds from first batch)."""
    consumed, t0 = 0, None
    deadline = time.monotonic() + timeout_s
    while consumed < expected and time.monotonic() < deadline:
        n = consumer.poll_once(0.1)
        if n and t0 is None:
            t0 = time.perf_counter()
        consumed += n
    return consumed, time.perf_counter() - (t0 or time.perf_counter())


def _pct(xs: list[float]) -> str:
    a = np.array(xs) * 1000
    return f"p50 {np.percentile(a, 50):.2f} ms, p99 {np.percentile(a, 99):.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impressions", type=int, default=150_000)
    ap.add_argument("--reads", type=int, default=300)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    t = time.perf_counter()
    world = generate_world(WorldConfig.demo(n_impressions=args.impressions, now_ms=int(time.time() * 1000)))
    print(f"generate demo world: {time.perf_counter() - t:.2f} s  {world.summary()}")

    with tempfile.TemporaryDirectory() as tmp, _infra(tmp) as settings:
        st = publish_world(world, settings, progress=False)
        print(f"publish: {st.total} events in {st.seconds:.2f} s = {st.total / st.seconds:,.0f} events/s")

        client = redis.Redis.from_url(settings.redis_url)
        cfg = IngestConfig(replay_from_beginning=True)  # assign from offset 0: no group join in the timing
        expected = {
            SocialGraphIngester: st.user_events,
            PostContentIngester: st.posts + st.deletes,
            ActionSequenceIngester: st.engagements,
        }
        for cls, n in expected.items():
            ing = cls(settings, client, cfg)
            consumer = ing.make_consumer()
            consumed, secs = _drain(consumer, n)
            consumer.close()
            print(
                f"ingest {ing.name:16s}: {consumed:>8,} events in {secs:6.2f} s"
                f" = {consumed / secs:>9,.0f} events/s"
            )

        rng = np.random.default_rng(0)
        post_ids = world.posts["post_id"].to_numpy()
        users = world.users["user_id"].to_numpy()
        p = settings.redis_prefix
        raw, decoded, graph, seq = [], [], [], []
        gc.collect()
        gc.freeze()  # as a long-lived service would after start-up: setup objects leave the GC's scans
        for _ in range(args.reads):
            ids = rng.choice(post_ids, 2000, replace=False).tolist()
            t = time.perf_counter()
            us.mget_posts_raw(client, ids, p)
            raw.append(time.perf_counter() - t)
            t = time.perf_counter()
            got = us.mget_posts(client, ids, p)
            decoded.append(time.perf_counter() - t)
            assert sum(g is not None for g in got) > 1900
            u = int(rng.choice(users))
            t = time.perf_counter()
            us.read_social_graph(client, u, p)
            graph.append(time.perf_counter() - t)
            t = time.perf_counter()
            us.read_action_sequence(client, u, p)
            seq.append(time.perf_counter() - t)
        print(f"MGET 2,000 post records (raw bytes):      {_pct(raw)}")
        print(f"MGET 2,000 post records (+ proto decode): {_pct(decoded)}")
        print(f"read_social_graph (1 round trip):        {_pct(graph)}")
        print(f"read_action_sequence:                    {_pct(seq)}")
        client.close()


if __name__ == "__main__":
    main()
