"""Ranking server under overload: a Predict server (default RankerConfig, random weights, score
cache off) in a child process and load from this one (niced, so the server gets the CPU first on a
small machine): open loop at `--times` x the capacity measured alone, or `--clients` closed-loop
clients pausing `--pause` s after a refusal. Every request: 2,200 candidates + 128 history items,
`--deadline` s. Prints, per status, count and latency from the scheduled send time, then goodput
and the server's admission metrics.

    .venv/bin/python bench/ranker_overload.py --times 2            # open loop, 2x capacity
    .venv/bin/python bench/ranker_overload.py --clients 64         # 64 clients retrying after 50 ms
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections import Counter

import grpc
import numpy as np

from protos import phoenix_pb2

METHOD = "/foryou.phoenix.RankingService/Predict"


def server(seconds: float) -> None:
    import torch
    from prometheus_client import REGISTRY

    from phoenix.ranker.config import RankerConfig
    from phoenix.ranker.handler import RankingHandler, RankingHandlerConfig
    from phoenix.ranker.model import RankerModel
    from phoenix.ranker.servicer import serve_ranking

    torch.set_num_threads(2)
    torch.manual_seed(0)
    h = RankingHandler(RankerModel(RankerConfig()).eval(), "bench", RankingHandlerConfig(cache_max_entries=0))
    srv, port = serve_ranking(h, "127.0.0.1:0")
    print(port, flush=True)
    c0 = os.times()
    sys.stdin.read()  # until the load generator is done
    c1 = os.times()
    print(f"server CPU {c1.user - c0.user + c1.system - c0.system:.1f} s over {seconds:.0f} s of load")
    for m in REGISTRY.collect():
        if m.name.startswith(("phoenix_ranker_rejected", "foryou_admission")):
            for s in m.samples:
                if not s.name.endswith("_created"):
                    print(f"  {s.name}{s.labels} {s.value:.6g}")
    srv.stop(0).wait()


def request(seed: int) -> bytes:
    r = np.random.default_rng(seed)
    hist = [
        phoenix_pb2.HistoryItem(post_id=int(p), author_id=int(p) % 9999 + 1, action_mask=2, product_surface=1)
        for p in r.integers(1, 10**15, 128)
    ]
    cands = [
        phoenix_pb2.RankCandidate(post_id=int(p), author_id=int(p) % 9999 + 1, product_surface=1)
        for p in r.integers(1, 10**15, 2200)
    ]
    req = phoenix_pb2.PredictRequest(
        user_id=7, action_sequence=phoenix_pb2.ActionSequence(items=hist), candidates=cands
    )
    return req.SerializeToString()


async def load(port: str, args: argparse.Namespace) -> list[tuple[str, float]]:
    reqs = [request(i) for i in range(32)]
    res: list[tuple[str, float]] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        alone = []
        for i in range(10):
            t0 = time.monotonic()
            await call(reqs[i], timeout=10)
            alone.append(time.monotonic() - t0)
        print(f"alone: p50 {np.median(alone) * 1e3:.1f} ms")

        async def one(i: int, scheduled: float) -> str:
            try:
                await call(reqs[i % len(reqs)], timeout=args.deadline)
                code = "OK"
            except grpc.aio.AioRpcError as e:
                code = e.code().name
            res.append((code, time.monotonic() - scheduled))
            return code

        end = time.monotonic() + args.seconds
        if args.clients:

            async def client(c: int) -> None:
                i = c
                while time.monotonic() < end:
                    if await one(i, time.monotonic()) != "OK":
                        await asyncio.sleep(args.pause)
                    i += 1

            await asyncio.gather(*[client(c) for c in range(args.clients)])
        else:
            rate = args.times / float(np.median(alone))
            print(f"open loop: {rate:.1f} requests/s")
            tasks, i, start = [], 0, time.monotonic()
            while time.monotonic() < end:
                scheduled = start + i / rate
                await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
                tasks.append(asyncio.create_task(one(i, scheduled)))
                i += 1
            await asyncio.gather(*tasks)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--times", type=float, default=2.0, help="open loop at this x the capacity")
    ap.add_argument("--clients", type=int, default=0, help="closed loop with this many clients instead")
    ap.add_argument("--pause", type=float, default=0.05, help="closed loop: pause after a refusal (s)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--deadline", type=float, default=1.0)
    ap.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.server:
        server(args.seconds)
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--server", "--seconds", str(args.seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    port = child.stdout.readline().strip()
    os.nice(19)  # the load generator yields the CPU to the server
    res = asyncio.run(load(port, args))
    child.stdin.close()
    print(child.stdout.read(), end="")
    child.wait()
    cnt = Counter(c for c, _ in res)
    print(f"{len(res)} calls in {args.seconds:.0f} s: goodput {cnt.get('OK', 0) / args.seconds:.1f} OK/s")
    for code, n in cnt.most_common():
        lat = np.array([s for c, s in res if c == code]) * 1e3
        print(
            f"  {code:18s} {n:6d} ({100 * n / len(res):3.0f}%)  p50 {np.percentile(lat, 50):7.1f} ms  "
            f"p99 {np.percentile(lat, 99):7.1f} ms"
        )


if __name__ == "__main__":
    main()
