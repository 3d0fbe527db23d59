"""Retrieval index benchmark: N synthetic posts embedded by the candidate tower, index build time,
memory, top-k query latency p50/p99, recall@k vs exact search, incremental add rate.

    .venv/bin/python bench/retrieval_bench.py [--posts 1000000] [--model DIR] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import faiss
import numpy as np
import torch

from foryou import user_state
from foryou.snowflake import make_ids
from phoenix.retrieval.handler import RetrievalHandler
from phoenix.retrieval.index import IndexConfig, PostIndex
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, load_two_tower


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--model", default="")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--top-k", type=int, default=1000)
    ap.add_argument("--exact-max-size", type=int, default=100_000)
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=64)
    ap.add_argument("--ef-search", type=int, default=1200)
    ap.add_argument("--add", type=int, default=10_000, help="posts added incrementally after the build")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if args.model:
        model, meta = load_two_tower(args.model)
        version = meta["model_version"]
    else:
        model, version = TwoTowerModel(TwoTowerConfig()).eval(), "untrained-default"
    n = args.posts + args.add
    now = int(time.time() * 1000)
    ids = make_ids(now - rng.integers(0, 47 * 3_600_000, n), np.arange(n) % 4_000_000)
    authors = rng.integers(1, 200_000, n)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    vecs = model.embed_posts(ids, authors)
    embed_s = time.perf_counter() - t0
    cfg = IndexConfig(
        exact_max_size=args.exact_max_size,
        hnsw_m=args.hnsw_m,
        ef_construction=args.ef_construction,
        ef_search=args.ef_search,
    )
    rss1 = rss_mb()
    t0 = time.perf_counter()
    idx = PostIndex(model.cfg.dim, cfg, capacity_hint=args.posts)
    idx.add(ids[: args.posts], authors[: args.posts], vecs[: args.posts])
    build_s = time.perf_counter() - t0
    rss2 = rss_mb()
    # queries: the user tower over random histories of indexed posts
    handler = RetrievalHandler(model, version)
    qs = []
    for _ in range(args.queries):
        h = rng.integers(0, args.posts, 32)
        seq = np.zeros(32, dtype=user_state.SEQ_DTYPE)
        seq["post_id"], seq["author_id"], seq["action_mask"] = ids[h], authors[h], 2
        qs.append(handler.user_vector(model, int(rng.integers(1, 10**6)), seq))
    lat, recalls = [], []
    flat = vecs[: args.posts]
    for q in qs:
        t0 = time.perf_counter()
        res = idx.search(q, args.top_k)
        lat.append(time.perf_counter() - t0)
        exact = np.argpartition(-(flat @ q), args.top_k)[: args.top_k]
        recalls.append(len({p for p, _, _ in res} & set(ids[exact].tolist())) / args.top_k)
    t0 = time.perf_counter()
    for s in range(args.posts, n, 500):
        idx.add(ids[s : s + 500], authors[s : s + 500], vecs[s : s + 500])
    add_s = time.perf_counter() - t0
    out = {
        "posts": args.posts,
        "dim": model.cfg.dim,
        "index": idx.kind,
        "model": version,
        "embed_posts_per_s": round(n / embed_s),
        "build_s": round(build_s, 1),
        "index_serialized_mb": round(len(faiss.serialize_index(idx._index)) / 2**20, 1),
        "rss_growth_during_build_mb": round(rss2 - rss1, 1),
        "rss_vectors_mb": round(rss1 - rss0, 1),
        "query_p50_ms": round(1000 * float(np.percentile(lat, 50)), 2),
        "query_p99_ms": round(1000 * float(np.percentile(lat, 99)), 2),
        f"recall@{args.top_k}_vs_exact": round(float(np.mean(recalls)), 4),
        "incremental_add_per_s": round(args.add / add_s) if args.add else None,
        "config": cfg.to_dict(),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
