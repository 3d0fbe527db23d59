"""Semantic ids from an item features table (`foryou index sids`): each item's feature columns become
one vector, and residual k-means (RQ-KMeans, the synthetic world's algorithm) turns it into one code
per level: level l clusters the residuals left by levels < l (FAISS k-means, 15 Lloyd iterations,
trained on at most 20,000 items, then every item encoded). Codes are stored +1, so 0 keeps meaning
"no SID" (`SidLookup`). Deterministic for a seed; items with equal features get equal SIDs.

Feature vector, every column weighing the same (expected squared norm 1):
* numeric / boolean columns: standardised (mean 0, variance 1; nulls = the mean);
* list-of-number columns (embeddings): each dimension standardised, divided by sqrt(dims);
* text columns: hashed bag of lower-case word tokens (`text_dim` buckets), L2-normalised (null or
  empty text = zeros).
By default every column except `post_id`, `sid` and id / time columns (`*_id`, `*_ms`) is used."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import polars as pl

LLOYD_ITERATIONS = 15
MAX_TRAIN_POINTS = 20_000
# FAISS wants >= 39 training points per centroid; small tables get a smaller codebook
MIN_POINTS_PER_CENTROID = 39
_TOKEN = re.compile(r"\w+")


def codebook_size(n: int, requested: int) -> int:
    return int(max(2, min(requested, n // MIN_POINTS_PER_CENTROID)))


def rq_kmeans(vectors: np.ndarray, levels: int, codebook: int, seed: int) -> np.ndarray:
    """int16 [N, levels] SIDs, each code in [1, codebook] (0 never: every item gets one)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    k = codebook_size(n, codebook)
    rng = np.random.default_rng(seed)
    train = rng.choice(n, size=min(n, MAX_TRAIN_POINTS), replace=False)
    residual = x.copy()
    codes = np.zeros((n, levels), dtype=np.int16)
    for level in range(levels):
        km = faiss.Kmeans(dim, k, niter=LLOYD_ITERATIONS, seed=seed + level, verbose=False)
        km.train(residual[train])
        _, assign = km.index.search(residual, 1)
        a = assign[:, 0]
        codes[:, level] = a + 1
        residual -= km.centroids[a]
    return codes


@dataclass(slots=True)
class SidBuildConfig:
    levels: int = 2
    codebook: int = 256  # the models' default sid_codebook: larger codes would be clipped
    text_dim: int = 64  # hash buckets per text column
    columns: tuple[str, ...] = ()  # () = every feature column (module docstring)
    seed: int = 0


def feature_columns(items: pl.DataFrame, columns: tuple[str, ...] = ()) -> list[str]:
    if columns:
        missing = [c for c in columns if c not in items.columns]
        if missing:
            raise ValueError(f"items table lacks column(s) {', '.join(missing)}")
        return list(columns)
    skip = {"post_id", "sid"}
    return [c for c in items.columns if c not in skip and not c.endswith(("_id", "_ms"))]


def _standardise(x: np.ndarray) -> np.ndarray:
    mean = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1:])
    x = np.where(np.isnan(x), mean, x)
    std = x.std(axis=0)
    return (x - mean) / np.where(std > 0, std, 1.0)


def _hashed_text(texts: list[str | None], dim: int) -> np.ndarray:
    out = np.zeros((len(texts), dim), dtype=np.float64)
    for i, text in enumerate(texts):
        for tok in _TOKEN.findall((text or "").lower()):
            h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
            out[i, h % dim] += 1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norm > 0, norm, 1.0)


def item_vectors(items: pl.DataFrame, cfg: SidBuildConfig) -> np.ndarray:
    """float32 [N, D] feature vectors of the items' feature columns."""
    blocks = []
    for name in feature_columns(items, cfg.columns):
        col = items[name]
        dtype = col.dtype
        if dtype.is_numeric() or dtype == pl.Boolean:
            blocks.append(_standardise(col.cast(pl.Float64).fill_null(np.nan).to_numpy()[:, None]))
        elif isinstance(dtype, pl.List | pl.Array) and dtype.inner is not None and dtype.inner.is_numeric():
            lens = col.list.len().fill_null(0)
            dims = int(lens.max() or 0)
            if dims == 0 or (lens != dims).any():
                raise ValueError(f"column {name}: every embedding must have the same length")
            x = np.stack(col.cast(pl.List(pl.Float64)).to_list()).astype(np.float64)
            blocks.append(_standardise(x) / np.sqrt(dims))
        elif dtype in (pl.String, pl.Categorical):
            blocks.append(_hashed_text(col.cast(pl.String).to_list(), cfg.text_dim))
        else:
            raise ValueError(
                f"column {name}: type {dtype} is not a feature (numbers, lists of numbers, text)"
            )
    if not blocks:
        raise ValueError("items table has no feature columns (numbers, lists of numbers or text)")
    return np.concatenate(blocks, axis=1).astype(np.float32)


def build_sids(items: pl.DataFrame, cfg: SidBuildConfig | None = None) -> pl.DataFrame:
    """post_id + sid (list of `levels` int64 codes in [1, codebook]), the format `--sids` reads."""
    cfg = cfg or SidBuildConfig()
    if "post_id" not in items.columns:
        raise ValueError("items table lacks column post_id")
    if items.height == 0:
        raise ValueError("items table is empty")
    if items["post_id"].is_duplicated().any():
        raise ValueError("items table has duplicate post_id values")
    if cfg.levels <= 0 or cfg.codebook < 2:
        raise ValueError("levels must be >= 1 and codebook >= 2")
    codes = rq_kmeans(item_vectors(items, cfg), cfg.levels, cfg.codebook, cfg.seed).astype(np.int64)
    sid = pl.Series("sid", codes.tolist(), dtype=pl.List(pl.Int64))
    return pl.DataFrame({"post_id": items["post_id"].cast(pl.Int64), "sid": sid})


def read_items(path: str | Path) -> pl.DataFrame:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    return pl.read_csv(p) if p.suffix.lower() == ".csv" else pl.read_parquet(p)
