"""Semantic-id lookup: post id -> SID codes (reference: the ranking server hydrates the SIDs of
history and candidate posts by post id). Codes are 1-based; 0 = unknown post / missing level."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from phoenix.log_dir import sids_source

if TYPE_CHECKING:
    from phoenix.ranker.config import RankerConfig


class SidLookup:
    """Vectorised post id -> [levels] int64 codes over a sorted id array."""

    def __init__(self, post_ids: np.ndarray, codes: np.ndarray) -> None:
        order = np.argsort(post_ids, kind="stable")
        self.post_ids = np.asarray(post_ids, dtype=np.int64)[order]
        self.codes = np.asarray(codes, dtype=np.int64).reshape(len(order), -1)[order]

    @property
    def levels(self) -> int:
        return self.codes.shape[1]

    def __len__(self) -> int:
        return len(self.post_ids)

    def fingerprint(self) -> str:
        """Identifies the lookup's content (vectors embedded with one lookup are stale for another)."""
        h = hashlib.blake2b(digest_size=8)
        h.update(self.post_ids.tobytes())
        h.update(self.codes.tobytes())
        return h.hexdigest()

    @classmethod
    def from_frame(cls, posts: pl.DataFrame) -> SidLookup:
        """A frame with `post_id` and `sid` (list of codes) columns, e.g. a log directory's posts table."""
        if "sid" not in posts.columns:
            raise ValueError("no `sid` column: posts carry no semantic ids")
        rows = posts.select("post_id", "sid").filter(pl.col("sid").list.len() > 0)
        if rows.height == 0:
            return cls(np.zeros(0, np.int64), np.zeros((0, 0), np.int64))
        codes = np.stack(rows["sid"].to_list())
        return cls(rows["post_id"].to_numpy(), codes)

    @classmethod
    def from_parquet(cls, path: str | Path) -> SidLookup:
        return cls.from_frame(pl.read_parquet(path, columns=["post_id", "sid"]))

    def lookup(self, post_ids: np.ndarray, levels: int) -> np.ndarray:
        """int64 [..., levels]: the first `levels` codes of each post (0 when unknown or absent)."""
        ids = np.asarray(post_ids, dtype=np.int64)
        out = np.zeros((*ids.shape, levels), dtype=np.int64)
        if len(self.post_ids) == 0 or levels == 0:
            return out
        flat = ids.reshape(-1)
        pos = np.clip(np.searchsorted(self.post_ids, flat), 0, len(self.post_ids) - 1)
        hit = (self.post_ids[pos] == flat) & (flat != 0)
        n = min(levels, self.levels)
        vals = np.zeros((len(flat), levels), dtype=np.int64)
        vals[hit, :n] = self.codes[pos[hit], :n]
        return vals.reshape(out.shape)


def resolve_sids(logs_path: str | Path, sids_path: str | Path | None = None) -> SidLookup | None:
    """The lookup of `phoenix.log_dir.sids_source`: `sids_path`, else the log directory's posts
    table when it has SIDs, else None (no SIDs)."""
    src = sids_source(logs_path, sids_path)
    return SidLookup.from_parquet(src) if src is not None else None


def with_sid_rows(
    cfg: RankerConfig, post_ids: np.ndarray, post_rows: np.ndarray, sids: SidLookup | None
) -> np.ndarray:
    """Hashed post rows [..., 2] with the SID rows of every post the lookup knows (first level
    code > 0) in their place; padding (post id 0) and unknown posts keep their rows."""
    if sids is None or cfg.sid_levels == 0:
        return post_rows
    codes = sids.lookup(post_ids, cfg.sid_levels)
    known = codes[..., 0] > 0
    return np.where(known[..., None], cfg.sid_rows(codes), post_rows)
