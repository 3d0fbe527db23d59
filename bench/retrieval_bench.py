"""Retrieval index benchmark: N synthetic posts embedded by the candidate tower, index build time,
memory, top-k query latency p50/p99 (the user tower is timed separately), recall@k vs exact
search, incremental add rate (index only, and embed + add through the handler).

    .venv/bin/python bench/retrieval_bench.py --model DIR [--posts 1000000] [--queries 300]
        [--kind pq|ivf|hnsw] [--k-factor 4] [--nprobe 48] [--ef-search 1200] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time

import faiss
import numpy as np
import torch

from foryou.core import user_state
from foryou.core.snowflake import make_ids
from phoenix.retrieval.handler import RetrievalHandler, RetrievalHandlerConfig
from phoenix.retrieval.index import IndexConfig, PostIndex
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, load_two_tower


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(xs: list[float], q: float) -> float:
    return round(1000 * float(np.percentile(xs, q)), 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--model", default="", help="retrieval checkpoint (default: untrained default towers)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--top-k", type=int, default=1000)
    ap.add_argument("--authors", type=int, default=200_000)
    ap.add_argument("--exact-max-size", type=int, default=100_000)
    from phoenix.device import describe, faiss_gpus

    print(f"device: {describe(torch.device('cpu'))}, faiss GPUs: {faiss_gpus()}")
    ap.add_argument("--kind", default="pq", choices=("pq", "ivf", "hnsw"))
    ap.add_argument("--k-factor", type=float, default=4.0, help="pq: exact re-ranking of k * this")
    ap.add_argument("--nprobe", type=int, default=48)
    ap.add_argument("--nlist", type=int, default=0)
    ap.add_argument("--pq-m", type=int, default=0, help="pq: 4-bit sub-quantizers, 0 = dim")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=64)
    ap.add_argument("--ef-search", type=int, default=1200)
    ap.add_argument("--threads", type=int, default=1, help="torch and FAISS (OpenMP) threads for builds")
    ap.add_argument("--search-threads", type=int, default=1, help="FAISS threads of the query thread")
    ap.add_argument("--add", type=int, default=20_000, help="posts added incrementally after the build")
    ap.add_argument("--add-batch", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
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
    authors = rng.integers(1, args.authors, n)
    load_start = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    vecs = model.embed_posts(ids[: args.posts], authors[: args.posts])
    embed_s = time.perf_counter() - t0
    cfg = IndexConfig(
        exact_max_size=args.exact_max_size,
        large_kind=args.kind,
        hnsw_m=args.hnsw_m,
        ef_construction=args.ef_construction,
        ef_search=args.ef_search,
        ivf_nlist=args.nlist,
        ivf_nprobe=args.nprobe,
        refine_k_factor=args.k_factor,
        pq_m=args.pq_m,
        search_threads=args.search_threads,
    )
    rss1 = rss_mb()
    t0 = time.perf_counter()
    idx = PostIndex(model.cfg.dim, cfg, capacity_hint=args.posts)
    idx.add(ids[: args.posts], authors[: args.posts], vecs)
    build_s = time.perf_counter() - t0
    rss2 = rss_mb()
    # queries: the user tower over histories of 32 random indexed posts
    handler = RetrievalHandler(model, version, config=RetrievalHandlerConfig(index=cfg))
    qs, tower = [], []
    for _ in range(args.queries):
        h = rng.integers(0, args.posts, 32)
        seq = np.zeros(32, dtype=user_state.SEQ_DTYPE)
        seq["post_id"], seq["author_id"], seq["action_mask"] = ids[h], authors[h], 2
        t0 = time.perf_counter()
        qs.append(handler.user_vector(model, int(rng.integers(1, 10**6)), seq))
        tower.append(time.perf_counter() - t0)
    for q in qs[:5]:  # warm-up
        idx.search(q, args.top_k)
    lat, cpu, recalls = [], [], []
    for q in qs:
        viewer = int(authors[rng.integers(0, args.posts)])  # own posts excluded, as in the service
        c0, t0 = time.thread_time(), time.perf_counter()
        res = idx.search(q, args.top_k, exclude_author_id=viewer)
        lat.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        s = vecs @ q
        s[authors[: args.posts] == viewer] = -np.inf
        exact = np.argpartition(-s, args.top_k)[: args.top_k]
        recalls.append(len({p for p, _, _ in res} & set(ids[exact].tolist())) / args.top_k)
    # incremental adds: index only (vectors precomputed), then embed + add through a handler
    add_vecs = model.embed_posts(ids[args.posts :], authors[args.posts :])
    half = args.add // 2
    t0 = time.perf_counter()
    for s in range(0, half, args.add_batch):
        e = min(s + args.add_batch, half)
        j = args.posts + s
        idx.add(ids[j : args.posts + e], authors[j : args.posts + e], add_vecs[s:e])
    add_s = time.perf_counter() - t0
    handler._state = (model, version, idx)
    t0 = time.perf_counter()
    for s in range(args.posts + half, n, args.add_batch):
        handler.add_posts(ids[s : s + args.add_batch], authors[s : s + args.add_batch])
    embed_add_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        nbytes = idx.save(f"{tmp}/snapshot", {"model_version": version})
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        PostIndex.load(f"{tmp}/snapshot")
        load_s = time.perf_counter() - t0
    out = {
        "posts": args.posts,
        "dim": model.cfg.dim,
        "index": idx.kind,
        "model": version,
        "embed_posts_per_s": round(args.posts / embed_s),
        "build_s": round(build_s, 1),
        "memory_bytes": idx.memory_bytes(),
        "memory_mb": round(idx.memory_bytes() / 2**20, 1),
        "rss_growth_during_build_mb": round(rss2 - rss1, 1),
        "user_tower_p50_ms": pct(tower, 50),
        "query_p50_ms": pct(lat, 50),
        "query_p99_ms": pct(lat, 99),
        "query_max_ms": pct(lat, 100),
        "query_cpu_p50_ms": pct(cpu, 50),
        "query_cpu_p99_ms": pct(cpu, 99),
        f"recall@{args.top_k}_vs_exact": round(float(np.mean(recalls)), 4),
        f"recall@{args.top_k}_vs_exact_min": round(float(np.min(recalls)), 4),
        "incremental_add_per_s_index_only": round(half / add_s) if half else None,
        "incremental_add_per_s_embed_and_add": round((args.add - half) / embed_add_s) if args.add else None,
        "snapshot_mb": round(nbytes / 2**20, 1),
        "snapshot_save_s": round(save_s, 2),
        "snapshot_load_s": round(load_s, 2),
        "config": cfg.to_dict(),
        "threads": args.threads,
        "search_threads": args.search_threads,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, faiss {faiss.__version__}",
        "loadavg_at_start": load_start,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
