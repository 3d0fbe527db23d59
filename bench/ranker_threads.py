"""Which thread calls the model: `RankingHandler.predict` (default model, history 128, 2,180
candidates, cache off) called always from one thread, alternately from the main thread and a
pool thread, and as two concurrent requests; with the compute thread (phoenix/compute.py) and
without it (model calls on the caller's thread). Each case runs in a fresh process.

    .venv/bin/python bench/ranker_threads.py [--candidates 2180] [--runs 30] [--repeat 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CASES = ("one-thread", "alternating", "two-concurrent")


def child(case: str, inline: bool, candidates: int, runs: int) -> None:
    import torch

    import phoenix.ranker.handler as handler_mod
    from phoenix.ranker.config import RankerConfig
    from phoenix.ranker.handler import Candidates, History, RankingHandler, RankingHandlerConfig
    from phoenix.ranker.model import RankerModel
    from phoenix.ranker.testing import random_request

    if inline:  # the code before the compute thread: torch runs on whichever thread calls
        handler_mod.run_compute = lambda fn, *a, **k: fn(*a, **k)
    torch.manual_seed(0)
    cfg = RankerConfig()
    h = RankingHandler(RankerModel(cfg), "bench", RankingHandlerConfig(cache_max_entries=0))
    _, hist, cand = random_request(cfg, [cfg.history_len], candidates, seed=1)
    hh = History(
        hist.post_ids[0], hist.author_ids[0], hist.action_masks[0], hist.surfaces[0], hist.dwell_ms[0]
    )
    cc = Candidates(cand.post_ids[0], cand.author_ids[0], cand.surfaces[0])
    pool = ThreadPoolExecutor(8)

    def one() -> None:
        h.predict(1, hh, cc)

    calls = [0]

    def alternating() -> None:
        calls[0] += 1
        if calls[0] % 2:
            one()
        else:
            pool.submit(one).result()

    def two() -> None:
        a, b = pool.submit(one), pool.submit(one)
        a.result(), b.result()

    fn = {"one-thread": one, "alternating": alternating, "two-concurrent": two}[case]
    for _ in range(3):
        fn()
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1e3)
    print(f"{np.median(ms):.1f} {np.min(ms):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=2180)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "inline", args.candidates, args.runs)
        return
    print(f"RankingHandler.predict, default model, {args.candidates} candidates; p50 / min ms per call")
    print("(two-concurrent: per pair of requests)")
    print(f"{'case':>15} {'caller thread':>16} {'compute thread':>16}")
    for _ in range(args.repeat):
        for case in CASES:
            cells = []
            for mode in ("inline", "compute"):
                out = subprocess.run(
                    [sys.executable, __file__, "--candidates", str(args.candidates), "--runs", str(args.runs)]
                    + ["--child", case, mode],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                cells.append(f"{out[0]:>7} / {out[1]:>6}")
            print(f"{case:>15} {cells[0]:>16} {cells[1]:>16}")


if __name__ == "__main__":
    main()
