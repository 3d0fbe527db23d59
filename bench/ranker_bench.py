"""Ranker benchmark: per-request latency (history 128, default config) for 100 / 1,000 / 2,000
candidates, fast path vs plain masked forward, achieved GFLOP/s vs the machine's measured fp32
matmul peak, and training examples/s on the default synthetic world.

    .venv/bin/python bench/ranker_bench.py [--runs 30] [--threads 2] [--bf16] [--skip-train] [--preset small]

Budget: 1,000 candidates <= 25 ms and >= 40% of the matmul peak.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from phoenix.compute import run_compute
from phoenix.ranker.config import RankerConfig, TrainConfig
from phoenix.ranker.handler import Candidates, History, RankingHandler, RankingHandlerConfig
from phoenix.ranker.model import RankerModel
from phoenix.ranker.testing import random_request


def matmul_peak_gflops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def timed(fn, runs: int) -> np.ndarray:  # noqa: ANN001
    for _ in range(3):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.array(out) * 1e3


def flops_of(fn) -> int:  # noqa: ANN001
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def bench_inference(runs: int, bf16: bool, peak: float, preset: str = "default") -> None:
    torch.manual_seed(0)
    cfg = RankerConfig.small() if preset == "small" else RankerConfig()
    model = RankerModel(cfg).eval()
    handler = RankingHandler(
        model, "bench", RankingHandlerConfig(cache_max_entries=0, bf16=bf16, max_in_flight=4)
    )
    print(
        f"model: width {cfg.emb_size}, {cfg.num_layers} layers, "
        f"{cfg.num_q_heads}q/{cfg.num_kv_heads}kv heads "
        f"x {cfg.key_size}, history {cfg.history_len}, dtype {'bf16' if bf16 else 'fp32'}"
    )
    print(
        f"{'cands':>6} {'path':>14} {'p50 ms':>8} {'p90 ms':>8} {'min ms':>8} "
        f"{'GFLOP':>7} {'GFLOP/s':>8} {'%peak':>6}"
    )
    for c in (100, 1000, 2000):
        batch, hist, cand = random_request(cfg, [cfg.history_len], c, seed=c)
        h = History(
            hist.post_ids[0], hist.author_ids[0], hist.action_masks[0], hist.surfaces[0], hist.dwell_ms[0]
        )
        cands = Candidates(cand.post_ids[0], cand.author_ids[0], cand.surfaces[0])
        with torch.inference_mode():
            fast_flops = flops_of(lambda: model.forward_fast(batch))  # noqa: B023
            masked_flops = flops_of(lambda: model(batch))  # noqa: B023
            rows = [
                # end to end through the handler: hashing, batch building, fast path, numpy out
                ("handler(fast)", timed(lambda: handler.predict(1, h, cands), runs), fast_flops),  # noqa: B023
                ("masked fwd", timed(lambda: model(batch), max(3, runs // 3)), masked_flops),  # noqa: B023
            ]
        for name, ms, fl in rows:
            p50 = float(np.median(ms))
            gfs = fl / (p50 / 1e3) / 1e9
            print(
                f"{c:>6} {name:>14} {p50:>8.2f} {np.percentile(ms, 90):>8.2f} {ms.min():>8.2f} "
                f"{fl / 1e9:>7.2f} {gfs:>8.1f} {100 * gfs / peak:>5.0f}%"
            )


def bench_training(steps: int) -> None:
    from phoenix.ranker.data import (
        ImpressionTable,
        batches_by_length,
        build_requests,
        impressions_from_log,
        make_batch,
    )
    from phoenix.ranker.optim import RowwiseAdagrad
    from phoenix.ranker.train import _dense_params, ranking_loss
    from world import WorldConfig, generate_world

    tc = TrainConfig()
    world = generate_world(WorldConfig.demo(seed=0))
    t0 = time.perf_counter()
    table = ImpressionTable.build(
        impressions_from_log(world.engagements), tc.model.hash_config, tc.eval_fraction
    )
    req = build_requests(table, tc.model.history_len, tc.max_candidates, tc.session_gap_ms)
    prep = time.perf_counter() - t0
    torch.manual_seed(0)
    model = RankerModel(tc.model).train()
    adam = torch.optim.AdamW(_dense_params(model), lr=tc.lr)
    ada = RowwiseAdagrad(model.table.table.weight, tc.embedding_lr)
    batches = batches_by_length(req.subset(~req.is_eval), tc.batch_size, np.random.default_rng(0))
    n_ex = n_tok = 0
    t0 = time.perf_counter()
    for i in range(steps):
        tb = make_batch(table, req, batches[i])
        loss, _ = ranking_loss(model, tb, tc.dwell_loss_weight)
        adam.zero_grad()
        ada.zero_grad()
        loss.backward()
        adam.step()
        ada.step()
        n_ex += int((tb.cand_index >= 0).sum())
        n_tok += int(tb.batch.context_valid.sum() + (tb.cand_index >= 0).sum())
    dt = time.perf_counter() - t0
    print(
        f"training (default config, demo world, batch {tc.batch_size} requests, {steps} steps): "
        f"{n_ex / dt:.0f} examples/s, {n_tok / dt:.0f} valid tokens/s, {steps / dt:.2f} steps/s; "
        f"data prep {prep:.2f} s for {len(table)} impressions"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--preset", choices=("default", "small"), default="default", help="inference model size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from phoenix.device import describe

    print(f"device: {describe(torch.device('cpu'))}")  # the model runs on the CPU here
    peak = matmul_peak_gflops()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"measured fp32 matmul peak {peak:.1f} GFLOP/s (2048^3, best of 10)"
    )
    bench_inference(args.runs, args.bf16, peak, args.preset)
    if not args.skip_train:
        bench_training(args.train_steps)


if __name__ == "__main__":
    # everything on the compute thread the serving handler uses (phoenix/compute.py), so the peak,
    # the handler and the masked forward share one OpenMP team, as in a serving process
    run_compute(main)
