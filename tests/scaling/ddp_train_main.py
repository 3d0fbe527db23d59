"""Ranker training entry for test_distributed.py: run as `python ddp_train_main.py LOGS OUT` (one
process) or under `torchrun --nproc-per-node 2` (data parallel, phoenix/distributed.py). Rank 0
prints the final metrics as one JSON line."""

from __future__ import annotations

import json
import sys

from phoenix import distributed
from phoenix.ranker.config import RankerConfig, TrainConfig
from phoenix.ranker.train import train_ranker


def main(logs: str, out: str) -> None:
    cfg = TrainConfig(
        model=RankerConfig.tiny(),
        max_steps=20,
        batch_size=16,
        exposure_epochs=0.0,
        warm_start_dim=0,
        warmup_steps=5,
        eval_every=0,
        checkpoint_every=0,
        num_threads=1,
        progress=False,
    )
    metrics = train_ranker(logs, out, cfg, evaluate=False)
    if "rank" not in metrics:  # rank 0 (or the single process)
        keys = ("final_train_loss_ema", "first_train_loss_ema", "steps", "world_size", "model_version")
        print(json.dumps({k: metrics.get(k) for k in keys}), flush=True)
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
