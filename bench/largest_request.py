"""Memory and latency of the ranker under the largest Predict its limits allow: `foryou serve phoenix`
(ranking only, an untrained checkpoint of `--model` shape) in a child process; Predicts of
max_candidates candidates and max_history history items (RankingHandlerConfig's defaults, or
`--max-candidates` / `--max-history`, passed to the server as the same flags), every candidate id
fresh so the score cache misses, from `--concurrency` clients; then one request just over the
candidate limit and one 1,000,000-candidate body. Prints the server's RSS before, its peak during
the run (sampled every 20 ms, and VmHWM) and after, and each status with its latency.

    .venv/bin/python bench/largest_request.py                      # default model, 4 x 10 requests
    .venv/bin/python bench/largest_request.py --model small --concurrency 8
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np

from protos import phoenix_pb2

METHOD = "/foryou.phoenix.RankingService/Predict"


def _kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def predict_bytes(n_cand: int, n_hist: int, seed: int) -> bytes:
    r = np.random.default_rng(seed)
    hist = [
        phoenix_pb2.HistoryItem(post_id=int(p), author_id=int(p) % 9999 + 1, action_mask=2, product_surface=1)
        for p in r.integers(1, 10**15, n_hist)
    ]
    cands = [
        phoenix_pb2.RankCandidate(post_id=int(p), author_id=int(p) % 9999 + 1, product_surface=1)
        for p in r.integers(1, 10**15, n_cand)
    ]
    req = phoenix_pb2.PredictRequest(
        user_id=7, action_sequence=phoenix_pb2.ActionSequence(items=hist), candidates=cands
    )
    return req.SerializeToString()


def huge_bytes(n_cand: int) -> bytes:
    one = phoenix_pb2.PredictRequest(
        candidates=[phoenix_pb2.RankCandidate(post_id=1_234_567_890_123, author_id=42, product_surface=1)]
    ).SerializeToString()
    return phoenix_pb2.PredictRequest(user_id=7).SerializeToString() + one * n_cand


def _wait_serving(address: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    end = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise SystemExit("the server exited")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise SystemExit(f"{address} not SERVING within {timeout_s} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("default", "small", "tiny"), default="default")
    ap.add_argument("--max-candidates", type=int, default=0, help="0: RankingHandlerConfig's default")
    ap.add_argument("--max-history", type=int, default=0, help="0: RankingHandlerConfig's default")
    ap.add_argument("--requests", type=int, default=10, help="per client (<= 100)")
    ap.add_argument("--concurrency", type=int, default=4, help="clients (<= 16)")
    ap.add_argument("--deadline-s", type=float, default=30.0)
    ap.add_argument("--device", default="cpu", help="the server's `serve phoenix --device`")
    args = ap.parse_args()
    if not (1 <= args.requests <= 100 and 1 <= args.concurrency <= 16):
        raise SystemExit("--requests in 1..100, --concurrency in 1..16")

    import torch

    from foryou.core.net import free_port
    from phoenix.device import DeviceError, describe, resolve_device
    from phoenix.ranker.checkpoint import save_model
    from phoenix.ranker.config import RankerConfig
    from phoenix.ranker.handler import RankingHandlerConfig
    from phoenix.ranker.model import RankerModel

    try:
        device = describe(resolve_device(args.device))
    except DeviceError as e:
        raise SystemExit(str(e)) from None
    defaults = RankingHandlerConfig()
    n_cand = args.max_candidates or defaults.max_candidates
    n_hist = args.max_history or defaults.max_history
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        cfg = {"default": RankerConfig(), "small": RankerConfig.small(), "tiny": RankerConfig.tiny()}[
            args.model
        ]
        save_model(Path(tmp) / "ranker", RankerModel(cfg), step=1)
        address = f"127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FORYOU_")}
        env["FORYOU_DATA_DIR"] = str(Path(tmp) / "data")
        cmd = [sys.executable, "-c", "from foryou.app.cli import app; app()", "serve", "phoenix"]
        cmd += ["--ranker-model", str(Path(tmp) / "ranker"), "--ranker-address", address]
        cmd += ["--max-candidates", str(n_cand), "--max-history", str(n_hist), "--device", args.device]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_serving(address, proc)
            pid = proc.pid
            payloads = [predict_bytes(n_cand, n_hist, i) for i in range(args.requests * args.concurrency + 1)]
            ch = grpc.insecure_channel(address)
            call = ch.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
            call(predict_bytes(10, 10, 10**6), timeout=30)  # warm: model, threads, channel
            rss0 = _kb(pid, "VmRSS")
            peak = [rss0]
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.02):
                    peak[0] = max(peak[0], _kb(pid, "VmRSS"))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            results: list[tuple[str, float]] = []

            def client(k: int) -> None:
                for i in range(args.requests):
                    t0 = time.monotonic()
                    try:
                        call(payloads[k * args.requests + i], timeout=args.deadline_s)
                        status = "OK"
                    except grpc.RpcError as e:
                        status = e.code().name
                    results.append((status, time.monotonic() - t0))

            t0 = time.monotonic()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(client, range(args.concurrency)))
            elapsed = time.monotonic() - t0
            refused: list[tuple[str, str, float]] = []
            for name, body in (
                (f"{n_cand + 1} candidates", predict_bytes(n_cand + 1, 1, 99)),
                ("1,000,000 candidates", huge_bytes(1_000_000)),
            ):
                t1 = time.monotonic()
                try:
                    call(body, timeout=30)
                    refused.append((name, "OK", time.monotonic() - t1))
                except grpc.RpcError as e:
                    refused.append(
                        (name, f"{e.code().name}: {(e.details() or '')[:90]}", time.monotonic() - t1)
                    )
            stop.set()
            sampler.join()
            rss1, hwm = _kb(pid, "VmRSS"), _kb(pid, "VmHWM")
            ch.close()
        finally:
            proc.terminate()
            proc.wait(30)
    size_kb = len(payloads[0]) / 1024
    print(
        f"ranker ({args.model} model) under its largest allowed Predict: {n_cand:,} candidates + "
        f"{n_hist} history items ({size_kb:.0f} kB), {args.concurrency} clients x {args.requests}"
    )
    print(f"  device: {device}")
    for status, n in sorted(Counter(s for s, _ in results).items()):
        lat = np.array([d for s, d in results if s == status]) * 1000
        print(
            f"  {status}: {n}, p50 {np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms, "
            f"max {lat.max():.0f} ms"
        )
    print(f"  {len(results) / elapsed:.1f} req/s over {elapsed:.1f} s")
    print(
        f"  server RSS: {rss0 / 1024:.0f} MiB before, peak {peak[0] / 1024:.0f} MiB during "
        f"(+{(peak[0] - rss0) / 1024:.0f}), {rss1 / 1024:.0f} MiB after; VmHWM {hwm / 1024:.0f} MiB"
    )
    for name, outcome, s in refused:
        print(f"  {name}: {outcome} in {s * 1000:.0f} ms")
    print(f"load average {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
