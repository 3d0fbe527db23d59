"""What a ranker with id inputs can reach on a synthetic world: favorite ROC-AUC on the held-out
split for the oracle and for oracles that lack what the ids cannot tell about a new post.

    .venv/bin/python bench/ranker_ceiling.py [--world DIR] [--eval-fraction 0.15]

Without --world it generates the default (demo preset, seed 0) world in a temporary directory.

Reads the world's hidden tables (users' topic preferences, author and post topic and quality). The
"author-level" oracle knows every user preference, author quality and follow edge exactly but not
the post's own topic (the author's primary topic with probability 1 - secondary_topic_frac, else
the secondary) nor its quality (integrated over its Beta prior): the best possible score for a post
with no engagement history, whose post-id embedding is untrained. See docs/ranker.md ("Ceiling").
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from phoenix.ranker.metrics import roc_auc
from world.engagement_model import FAV, ImpressionFeatures, affinity_gate, oracle_column


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default="", help="world directory (default: generate the demo world)")
    ap.add_argument("--eval-fraction", type=float, default=0.15)
    ap.add_argument("--samples", type=int, default=64, help="post-quality draws per impression")
    args = ap.parse_args()
    if not args.world:
        from world import WorldConfig, generate_world

        with tempfile.TemporaryDirectory() as d:
            report(generate_world(WorldConfig.demo(seed=0)).save(Path(d)), args)
    else:
        report(Path(args.world), args)


def report(w: Path, args: argparse.Namespace) -> None:
    cfg = json.loads((w / "world.json").read_text())
    cfg = cfg.get("config", cfg)
    oracle = pl.read_parquet(w / "oracle.parquet")
    posts = pl.read_parquet(w / "posts.parquet").select("post_id", "author_id", "topic")
    authors = pl.read_parquet(w / "authors.parquet").select(
        "author_id", pl.col("quality").alias("qa"), "primary_topic", "secondary_topic"
    )
    prefs = (
        pl.read_parquet(w / "users.parquet")
        .select("user_id", "topics", "topic_weights")
        .explode(["topics", "topic_weights"])
        .select("user_id", pl.col("topics").cast(pl.Int64).alias("t"), pl.col("topic_weights").alias("pref"))
    )
    favs = (
        pl.read_parquet(w / "engagements.parquet")
        .filter(pl.col("action") == FAV)
        .select("user_id", "post_id")
        .unique()
        .with_columns(pl.lit(1).alias("y"))
    )
    d = oracle.join(posts, on="post_id").join(authors, on="author_id")
    d = d.join(favs, on=["user_id", "post_id"], how="left").with_columns(pl.col("y").fill_null(0))
    for col, name in (
        ("topic", "pref_post"),
        ("primary_topic", "pref_primary"),
        ("secondary_topic", "pref_secondary"),
    ):
        d = d.with_columns(pl.col(col).cast(pl.Int64).alias("t")).join(
            prefs.rename({"pref": name}), on=["user_id", "t"], how="left"
        )
    d = d.with_columns(pl.col("^pref_.*$").fill_null(0.0))
    ts = d["timestamp_ms"].to_numpy()
    ev = ts >= np.quantile(ts, 1.0 - args.eval_fraction)
    seen_posts = d.filter(pl.Series(~ev))["post_id"].unique()
    d = d.filter(pl.Series(ev)).with_columns(pl.col("post_id").is_in(seen_posts.implode()).alias("seen"))
    y = d["y"].to_numpy()
    qa = d["qa"].to_numpy()
    inn = d["in_network"].to_numpy().astype(bool)
    k = cfg.get("post_quality_concentration", 8.0)
    rng = np.random.default_rng(0)
    qp = rng.beta(
        np.maximum(k * qa, 1e-3)[:, None], np.maximum(k * (1 - qa), 1e-3)[:, None], (len(qa), args.samples)
    )

    def expected_gate(pref: np.ndarray) -> np.ndarray:
        n = qp.shape[1]
        f = ImpressionFeatures(
            pref=np.repeat(pref, n),
            author_quality=np.repeat(qa, n),
            post_quality=qp.ravel(),
            in_network=np.repeat(inn, n),
            has_video=np.zeros(len(pref) * n, bool),
            spam=np.zeros(len(pref) * n, bool),
            nsfw=np.zeros(len(pref) * n, bool),
        )
        g = affinity_gate(
            f,
            cfg.get("gate_slope", 14.0),
            cfg.get("gate_center", 0.15),
            cfg.get("in_network_logit_boost", 1.0),
        )
        return g.reshape(len(pref), n).mean(1)

    sec = cfg.get("secondary_topic_frac", 0.2)
    oracle_auc = roc_auc(y, d[oracle_column(FAV)].to_numpy())
    post_level = expected_gate(d["pref_post"].to_numpy())
    author_level = (1 - sec) * expected_gate(d["pref_primary"].to_numpy()) + sec * expected_gate(
        d["pref_secondary"].to_numpy()
    )
    seen = d["seen"].to_numpy()
    rows = [
        ("oracle (exact label probability)", oracle_auc),
        ("post topic known, post quality integrated", roc_auc(y, post_level)),
        ("author-level: post topic and quality integrated", roc_auc(y, author_level)),
        (
            f"post topic known only if trained on ({seen.mean():.0%})",
            roc_auc(y, np.where(seen, post_level, author_level)),
        ),
        ("author quality alone", roc_auc(y, qa)),
    ]
    print(f"favorite ROC-AUC, most recent {args.eval_fraction:.0%} of impressions ({int(y.sum())} positives)")
    for name, auc in rows:
        print(f"  {name:<50} {auc:.4f}")
    print(f"  {'bar: 0.5 + 0.8 x (oracle - 0.5)':<50} {0.5 + 0.8 * (oracle_auc - 0.5):.4f}")


if __name__ == "__main__":
    main()
