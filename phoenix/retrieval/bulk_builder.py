"""Bulk index build (`foryou index build`): embed every post of a log directory's posts table (or of
a posts Parquet file) with a checkpoint's candidate tower, build the FAISS index in one go and write
a snapshot that the live service (same model version) starts from."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from phoenix.log_dir import posts_file
from phoenix.ranker.sids import SidLookup
from phoenix.retrieval.index import IndexConfig, PostIndex
from phoenix.retrieval.model import load_two_tower


def read_posts(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(post ids, author ids) of the live posts in a log directory's posts table or a posts Parquet
    file; rows with `deleted_at_ms > 0` are skipped."""
    p = posts_file(path)
    schema = pl.read_parquet_schema(p)
    missing = {"post_id", "author_id"} - set(schema)
    if missing:
        raise ValueError(f"{p}: missing columns {sorted(missing)}")
    cols = ["post_id", "author_id"] + (["deleted_at_ms"] if "deleted_at_ms" in schema else [])
    df = pl.read_parquet(p, columns=cols)
    if "deleted_at_ms" in df.columns:
        df = df.filter(pl.col("deleted_at_ms").fill_null(0) <= 0)
    df = df.unique("post_id", keep="first", maintain_order=True)
    return df["post_id"].to_numpy().astype(np.int64), df["author_id"].to_numpy().astype(np.int64)


def read_sids(path: str | Path) -> SidLookup | None:
    """The posts' semantic ids when the posts table (as in `read_posts`) has a `sid` column, else None."""
    p = posts_file(path)
    return SidLookup.from_parquet(p) if "sid" in pl.read_parquet_schema(p) else None


def build_index_snapshot(
    model_dir: str | Path,
    posts_path: str | Path,
    out_dir: str | Path,
    config: IndexConfig | None = None,
    now_ms: int = 0,
) -> dict[str, Any]:
    """Builds and saves the snapshot; `now_ms` > 0 also drops posts older than the retention.
    Returns the snapshot metadata (posts, kind, memory_bytes, embed/build seconds, model_version)."""
    model, meta = load_two_tower(model_dir)
    post_ids, author_ids = read_posts(posts_path)
    sids = read_sids(posts_path)
    t0 = time.perf_counter()
    vecs = model.embed_posts(post_ids, author_ids, sids=sids)
    embed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = PostIndex(model.cfg.dim, config, capacity_hint=len(post_ids))
    index.add(post_ids, author_ids, vecs)
    if now_ms:
        index.evict(now_ms)
    build_s = time.perf_counter() - t0
    extra = {
        "model_version": str(meta["model_version"]),
        "model_dir": str(Path(model_dir).resolve()),
        "source": str(Path(posts_path).resolve()),
        "embed_seconds": round(embed_s, 3),
        "build_seconds": round(build_s, 3),
        "saved_at_ms": int(time.time() * 1000),
    }
    index.save(out_dir, extra)
    return {**index.stats(), **extra}
