"""GetScoredPosts latency with ~2,000 candidates (1,000+ in network from Thunder's real in-process
handler, 1,000 out of network), real Redis for the social graph / action sequence / post core data /
authors, through the real gRPC service. Retrieval and the ranker are in-process stubs unless their
packages provide in-process handlers (their own costs are benchmarked in their areas; `--ranker-ms`
adds a simulated model time). Prints p50/p99 sequential and with 4 concurrent clients, and a
per-stage / per-component breakdown.

    .venv/bin/python bench/feed_bench.py [--requests 100] [--workers 2] [--real-ranker] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import statistics
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import redis

from foryou.app import infra
from foryou.app.in_process import InProcessThunderClient
from foryou.core import user_state as us
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from home_mixer.clients import HomeMixerClients, Predictions, RedisUserState
from home_mixer.predict_decoder import decode_predict_response
from home_mixer.service import HomeMixerConfig, HomeMixerService, tune_gc
from protos import events_pb2, home_mixer_pb2, home_mixer_pb2_grpc, phoenix_pb2
from thunder.config import ThunderConfig
from thunder.handler import InNetworkPostsHandler
from thunder.ingest import to_record
from thunder.store import PostStore

VIEWER = 1
N_FOLLOW = 300
N_IN = 1200
N_OON = 1000


class StubRetrieval:
    """Answers from pre-serialized bytes: the cost left is what a gRPC client pays (parsing)."""

    def __init__(self, cands: list[tuple[int, int]]) -> None:
        resp = phoenix_pb2.RetrieveResponse(model_version="stub")
        for p, a in cands:
            resp.candidates.add(post_id=p, author_id=a, score=0.5)
        self.raw = resp.SerializeToString()

    async def retrieve(self, request: phoenix_pb2.RetrieveRequest) -> phoenix_pb2.RetrieveResponse:
        return phoenix_pb2.RetrieveResponse.FromString(self.raw)


class StubRanker:
    """Random probabilities (64 heads, 8 continuous) per post, pre-serialized; a response is the
    concatenation of the asked posts' pieces (repeated fields concatenate), decoded like the gRPC
    client does.
    The model's own time is the ranker's budget (docs/perf); `sleep_ms` simulates it."""

    def __init__(self, post_ids: list[int], sleep_ms: float) -> None:
        self.sleep_s = sleep_ms / 1000
        rng = np.random.default_rng(0)
        self.pieces: dict[int, bytes] = {}
        for pid in post_ids:
            pred = phoenix_pb2.CandidatePrediction(
                post_id=pid,
                action_probs=(rng.random(64) * 0.1).tolist(),
                continuous=[0.0, 5.0, 0, 0, 0, 0, 0, 0],
            )
            self.pieces[pid] = phoenix_pb2.PredictResponse(predictions=[pred]).SerializeToString()
        self.tail = phoenix_pb2.PredictResponse(model_version="stub").SerializeToString()

    async def predict(self, request: phoenix_pb2.PredictRequest) -> Predictions:
        if self.sleep_s:
            await asyncio.sleep(self.sleep_s)
        raw = b"".join(self.pieces[c.post_id] for c in request.candidates) + self.tail
        return decode_predict_response(raw)  # what GrpcRankingClient does with the answer


def seed(redis_url: str, prefix: str) -> tuple[PostStore, list[tuple[int, int]], list[int]]:
    r = redis.Redis.from_url(redis_url)
    now_ms = int(time.time() * 1000)
    now_s = now_ms // 1000
    follows = list(range(1000, 1000 + N_FOLLOW))
    r.sadd(us.social_key("following", VIEWER, prefix), *follows)
    r.sadd(us.social_key("mutedkw", VIEWER, prefix), "football", "world cup")
    r.sadd(us.social_key("blocked", VIEWER, prefix), *follows[:5])
    rng = np.random.default_rng(1)
    k = 128
    items = us.sequence_items(
        rng.integers(1, 1 << 40, k),
        rng.integers(1, 1 << 20, k),
        rng.integers(1, 40, k),
        np.ones(k),
        np.arange(k),
        np.zeros(k),
    )
    r.set(us.seq_key(VIEWER, prefix), us.encode_sequence(items))
    store = PostStore(ThunderConfig.default().store)
    pipe = r.pipeline(transaction=False)
    records, oon = [], []
    words = [
        "the",
        "a",
        "news",
        "today",
        "match",
        "music",
        "film",
        "code",
        "data",
        "sport",
        "game",
        "city",
        "art",
    ]
    for i in range(N_IN + N_OON):
        pid = make_id(now_ms - int(rng.integers(1, 40 * 3600_000)), i)
        author = follows[i % N_FOLLOW] if i < N_IN else 50_000 + i % 400
        text = " ".join(rng.choice(words, 12))
        post = events_pb2.Post(post_id=pid, author_id=author, created_at=now_s, text=text)
        if i % 10 == 0:
            post.has_video, post.video_duration_ms = True, 15_000
        pipe.set(us.post_key(pid, prefix), us.encode_post(post))
        pipe.hset(us.author_key(author, prefix), mapping={"screen_name": f"u{author}", "follower_count": 100})
        if i < N_IN:
            records.append(to_record(post))
        else:
            oon.append((pid, author))
    pipe.execute()
    store.insert(records, now_s=now_s)
    return store, oon, [r.post_id for r in records] + [p for p, _ in oon]


DEGRADED_SEEN: list[str] = []  # per load process


def _one(stub: home_mixer_pb2_grpc.ScoredPostsServiceStub) -> float:
    t0 = time.perf_counter()
    resp = stub.GetScoredPosts(home_mixer_pb2.GetScoredPostsRequest(viewer_id=VIEWER), timeout=10)
    if resp.degraded or not resp.scored_posts:  # reported, not hidden: a timeout under load
        DEGRADED_SEEN.append(",".join(resp.degraded) or "empty")
    return (time.perf_counter() - t0) * 1000


def load(address: str, n: int) -> tuple[list[float], list[float], float, list[str]]:
    """Client process: n sequential calls, then 4 concurrent clients (threads) of n/4 calls each."""
    with grpc.insecure_channel(address) as ch:
        stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
        for _ in range(5):  # warm-up
            _one(stub)
        seq = [_one(stub) for _ in range(n)]

    def client(_: int) -> list[float]:
        # each client its own TCP connection (a local subchannel pool; by default grpc shares one
        # connection per target in a process): SO_REUSEPORT workers balance connections
        with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
            _one(stub)
            return [_one(stub) for _ in range(n // 4)]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as ex:
        parts = list(ex.map(client, range(4)))
    wall = time.perf_counter() - t0
    return seq, [x for xs in parts for x in xs], wall, list(DEGRADED_SEEN)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q))


def print_latency(seq: list[float], conc: list[float], wall: float, degraded: list[str]) -> None:
    print(
        f"sequential   n={len(seq):4d}  p50={pct(seq, 50):7.1f} ms  p99={pct(seq, 99):7.1f} ms  "
        f"mean={statistics.mean(seq):.1f}"
    )
    print(
        f"4 concurrent n={len(conc):4d}  p50={pct(conc, 50):7.1f} ms  p99={pct(conc, 99):7.1f} ms  "
        f"throughput={len(conc) / wall:.1f} req/s"
    )
    print(f"degraded or empty responses: {len(degraded)} {sorted(set(degraded))}")


async def run_workers(args: argparse.Namespace, redis_url: str) -> None:
    """Deployment shape: Thunder and the stubs as gRPC servers in this process, `--workers` home_mixer
    processes sharing one port, calling them over gRPC; everything on this machine's 2 cores."""
    from foryou.core.grpc_server import GrpcServer, wait_serving
    from home_mixer.service import start_workers, stop_workers, with_fixed_port
    from protos import thunder_pb2_grpc
    from thunder.servicer import InNetworkPostsServicer

    prefix = "bench:"
    store, oon, all_ids = seed(redis_url, prefix)
    deps = GrpcServer("127.0.0.1:0")
    deps.add(
        thunder_pb2_grpc.add_InNetworkPostsServiceServicer_to_server,
        InNetworkPostsServicer(InNetworkPostsHandler(store, ThunderConfig.default())),
        "foryou.thunder.InNetworkPostsService",
    )
    retrieval, ranker = StubRetrieval(oon), StubRanker(all_ids, args.ranker_ms)

    async def retrieve(req: phoenix_pb2.RetrieveRequest, ctx: object) -> bytes:
        return retrieval.raw

    async def predict(req: phoenix_pb2.PredictRequest, ctx: object) -> bytes:
        if ranker.sleep_s:
            await asyncio.sleep(ranker.sleep_s)
        return b"".join(ranker.pieces[c.post_id] for c in req.candidates) + ranker.tail

    def raw(fn: object, req_type: type) -> grpc.RpcMethodHandler:  # responses are pre-serialized bytes
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=req_type.FromString, response_serializer=lambda b: b
        )

    deps.server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "foryou.phoenix.RetrievalService", {"Retrieve": raw(retrieve, phoenix_pb2.RetrieveRequest)}
            ),
            grpc.method_handlers_generic_handler(
                "foryou.phoenix.RankingService", {"Predict": raw(predict, phoenix_pb2.PredictRequest)}
            ),
        ]
    )
    await deps.start()
    config = with_fixed_port(HomeMixerConfig(publish_served=False))
    settings = Settings(redis_url=redis_url, redis_prefix=prefix, log_level="ERROR")
    procs = start_workers(settings, deps.address, deps.address, deps.address, config, args.workers)
    try:
        await asyncio.to_thread(wait_serving, config.grpc_address, "", 60.0)
        await asyncio.sleep(1.0)  # let every worker bind before the load connects
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            seq, conc, wall, degraded = await asyncio.to_thread(
                pool.apply, load, (config.grpc_address, args.requests)
            )
    finally:
        stop_workers(procs)
        await deps.stop(0.5)
    print(f"{args.workers} home_mixer worker processes; Thunder + stubs over gRPC in the bench process")
    print_latency(seq, conc, wall, degraded)


async def run(args: argparse.Namespace, redis_url: str) -> None:
    if args.workers:
        await run_workers(args, redis_url)
        return
    prefix = "bench:"
    store, oon, all_ids = seed(redis_url, prefix)
    thunder = InProcessThunderClient(InNetworkPostsHandler(store, ThunderConfig.default()))
    ranking: object = StubRanker(all_ids, args.ranker_ms)
    if args.real_ranker:  # phoenix's RankingHandler, default (serving) size, untrained weights
        import torch

        from foryou.app.in_process import RankingHandlerClient
        from phoenix.ranker.config import RankerConfig
        from phoenix.ranker.handler import RankingHandler, RankingHandlerConfig
        from phoenix.ranker.model import RankerModel

        torch.manual_seed(0)
        no_cache = RankingHandlerConfig(cache_max_entries=0)  # identical requests must not hit its cache
        ranking = RankingHandlerClient(
            RankingHandler(RankerModel(RankerConfig()), "untrained-default", no_cache)
        )
        print("ranker: phoenix RankingHandler in process (default config, untrained)")
    clients = HomeMixerClients(thunder, StubRetrieval(oon), ranking, RedisUserState(redis_url, prefix))  # type: ignore[arg-type]
    svc = HomeMixerService(
        Settings(redis_url=redis_url, redis_prefix=prefix), clients, HomeMixerConfig(publish_served=False)
    )
    await svc.start()
    if not args.no_gc_tuning:
        tune_gc()  # as `foryou serve home-mixer` does after start-up
    req = home_mixer_pb2.GetScoredPostsRequest(viewer_id=VIEWER)
    # the load runs in its own process so client CPU does not share the server's event loop
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        seq, conc, wall, degraded = await asyncio.to_thread(pool.apply, load, (svc.address, args.requests))

    # per-stage breakdown from the pipeline's own traces (in process, same handler)
    stages: dict[str, list[float]] = defaultdict(list)
    comps: dict[str, list[float]] = defaultdict(list)
    sizes: dict[str, int] = {}
    prof = None
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    for _ in range(min(args.requests, 50)):
        fr = await svc.handler.run(req)
        await svc.pipeline.drain_side_effects()
        per_request: dict[str, float] = defaultdict(float)
        for st in fr.result.stages:  # scorers trace one stage each: sum them
            per_request[st.stage] += st.latency_ms
            sizes[st.stage] = st.size
            for c in st.components:
                comps[f"{st.stage}/{c.component}"].append(c.latency_ms)
        for name, ms in per_request.items():
            stages[name].append(ms)
        candidates = fr.result.retrieved_count
    if prof is not None:
        import pstats

        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    await svc.stop()

    print(f"candidates per request: {candidates} (in-network {N_IN} max, out-of-network {N_OON})")
    print_latency(seq, conc, wall, degraded)
    print("per stage (p50 ms):")
    for name, xs in stages.items():
        print(f"  {name:26s} {pct(xs, 50):7.2f}   size={sizes[name]}")
    print("per component (p50 ms, top 12):")
    for name, xs in sorted(comps.items(), key=lambda kv: -pct(kv[1], 50))[:12]:
        print(f"  {name:55s} {pct(xs, 50):7.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--ranker-ms", type=float, default=0.0, help="simulated model time per Predict")
    ap.add_argument("--profile", action="store_true", help="cProfile the in-process breakdown runs")
    ap.add_argument("--real-ranker", action="store_true", help="phoenix RankingHandler instead of the stub")
    ap.add_argument(
        "--workers", type=int, default=0, help="N>0: N home_mixer processes, dependencies over gRPC"
    )
    ap.add_argument(
        "--no-gc-tuning",
        action="store_true",
        help="one process: keep the default gc thresholds (workers always tune)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as d:
        proc, url = infra.start_redis(Path(d))
        try:
            asyncio.run(run(args, url))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
