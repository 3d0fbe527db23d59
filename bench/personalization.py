"""Does the ranker personalise? Leave-one-out figures of docs/ranker.md and docs/retrieval.md.

Generates (or reads) a synthetic world, splits it leave-one-out (each user's last positive engagement
is the test item), derives a positives-only log (impression rows dropped), and for both logs trains
the retrieval model and the ranker, then reports HR@10 / NDCG@10 / MRR for retrieval alone,
retrieval + ranker re-ranking its top 100, popularity and random, plus the history ablation (the
ranker's re-ranking with an empty / another user's history, and the mean per-user correlation of its
scores with and without the history).

    .venv/bin/python bench/personalization.py --out /tmp/loo --max-users 1000
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from phoenix.leave_one_out import evaluate_loo, positives_only, split_leave_one_out
from phoenix.ranker.config import RankerConfig, TrainConfig
from phoenix.ranker.data import read_log
from phoenix.ranker.train import train_ranker
from phoenix.retrieval.hard_negatives import mine_hard_negatives
from phoenix.retrieval.train import RetrievalTrainConfig, train_retrieval
from world import WorldConfig, generate_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--world", default="", help="a saved world (default: generate the demo world)")
    ap.add_argument("--out", default="/tmp/foryou-personalization")
    ap.add_argument("--ranker-steps", type=int, default=600)
    ap.add_argument("--negatives", type=int, default=16)
    ap.add_argument("--distribution", default="recent")
    ap.add_argument("--listwise-weight", type=float, default=1.0)
    ap.add_argument("--max-users", type=int, default=0)
    ap.add_argument("--user-dropout", type=float, default=0.5, help="TrainConfig.user_dropout")
    ap.add_argument("--logs", default="full,positives-only", help="which logs to run")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    out = Path(a.out)
    world = Path(a.world) if a.world else out / "world"
    if not (world / "engagements.parquet").exists():
        generate_world(WorldConfig.demo(seed=0)).save(world)
    train, test = split_leave_one_out(read_log(world / "engagements.parquet"))
    test.write_parquet(out / "test.parquet")
    rows = []
    wanted = set(a.logs.split(","))
    for name, log in (("full log", train), ("positives-only log", positives_only(train))):
        if name.split()[0] not in wanted:
            continue
        d = out / name.split()[0]
        d.mkdir(parents=True, exist_ok=True)
        log.write_parquet(d / "engagements.parquet")
        shutil.copy(world / "posts.parquet", d / "posts.parquet")
        t0 = time.monotonic()
        rcfg = RetrievalTrainConfig.fast(num_threads=a.threads, progress=False, holdout="last:1")
        train_retrieval(d, d / "retrieval", rcfg)
        kw = dict(
            negatives=a.negatives,
            negative_distribution=a.distribution,
            negatives_from=str(d / "retrieval"),
            listwise_weight=a.listwise_weight,
            user_dropout=a.user_dropout,
        )
        cfg = TrainConfig(
            model=RankerConfig.small(),
            max_steps=a.ranker_steps,
            num_threads=a.threads,
            progress=False,
            eval_every=0,
            checkpoint_every=0,
            **kw,  # type: ignore[arg-type]
        )
        shutil.rmtree(d / "ranker", ignore_errors=True)
        train_ranker(d, d / "ranker", cfg, evaluate=False, hard_miner=mine_hard_negatives)
        res = evaluate_loo(d, out / "test.parquet", d / "retrieval", d / "ranker", max_users=a.max_users)
        res["train_s"] = round(time.monotonic() - t0)
        rows.append((name, res))
        print(json.dumps({"log": name, **res}))
    print("\n| log | scorer | HR@10 | NDCG@10 | MRR |\n|---|---|---|---|---|")
    for name, res in rows:
        for k, v in res.items():
            if isinstance(v, dict) and "mrr" in v:
                print(f"| {name} | {k} | {v['hr@10']:.4f} | {v['ndcg@10']:.4f} | {v['mrr']:.4f} |")
    for name, res in rows:
        for key, g in res.items():
            if "history_gain" in key and isinstance(g, dict):
                print(
                    f"{name}: {key}: HR@10 {g['hr@10']:+.4f} "
                    f"[{g['hr@10_lo']:+.4f}, {g['hr@10_hi']:+.4f}], NDCG@10 {g['ndcg@10']:+.4f} "
                    f"[{g['ndcg@10_lo']:+.4f}, {g['ndcg@10_hi']:+.4f}] (paired bootstrap, 95%)"
                )
        print(
            f"{name}: ranker score correlation with empty history "
            f"{res['ranker_score_corr_with_empty_history']:.3f}, with another user's history "
            f"{res['ranker_score_corr_with_other_history']:.3f}"
        )


if __name__ == "__main__":
    main()
