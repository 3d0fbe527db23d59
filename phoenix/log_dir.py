"""Phoenix's training and evaluation input: a *log directory*.

A log directory is a folder of Parquet files with fixed names:

* `engagements.parquet` (required): the engagement log, one row per event with the columns
  `LOG_COLUMNS`: an `IMPRESSION` row per impression plus one row per action on it.
* `oracle.parquet` (optional): one row per impression (`user_id`, `post_id`, ...) with a
  `p_<ActionName>` column per action: the exact probability its label was drawn from (only a
  simulator knows it). Evaluation scores it as the ceiling.
* `history.parquet` (optional): engagement events from before the log (same columns): history
  context only — they fill the histories of the log's first requests, as the serving action
  sequence does, and are never candidates or labels (a retrain window writes the engagements
  before its start here).
* `posts.parquet` (optional): one row per post with `post_id`, `author_id`, optionally
  `deleted_at_ms` (> 0 = deleted) and `sid` (list of semantic-id codes). The retrieval corpus and
  the default source of semantic ids.

Other files in the folder are ignored. Wherever a log directory is accepted, a single
engagement-log Parquet file is too (then there is no oracle and no posts table). The synthetic
world saves its frames under these names, so a saved world is a log directory.

This module only resolves paths (and reads Parquet schemas): it imports nothing else of phoenix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

ENGAGEMENTS_FILE = "engagements.parquet"
ORACLE_FILE = "oracle.parquet"
POSTS_FILE = "posts.parquet"
HISTORY_FILE = "history.parquet"
LOG_COLUMNS = ("user_id", "post_id", "author_id", "action", "timestamp_ms", "product_surface", "dwell_ms")


@dataclass(frozen=True, slots=True)
class LogPaths:
    """The files of one log input that exist; the optional ones are None when absent."""

    engagements: Path
    oracle: Path | None = None
    posts: Path | None = None
    history: Path | None = None


def resolve_logs(path: str | Path) -> LogPaths:
    """A log directory (must hold engagements.parquet) or a single engagement-log Parquet file."""
    p = Path(path)
    if p.is_dir():
        eng = p / ENGAGEMENTS_FILE
        if not eng.exists():
            raise FileNotFoundError(f"{p}: no {ENGAGEMENTS_FILE}")
        return LogPaths(
            eng, _if_exists(p / ORACLE_FILE), _if_exists(p / POSTS_FILE), _if_exists(p / HISTORY_FILE)
        )
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    return LogPaths(p)


def sids_source(logs_path: str | Path, sids_path: str | Path | None = None) -> Path | None:
    """Where the posts' semantic ids come from: `sids_path` (Parquet with post_id + sid) when given,
    else the log directory's posts table when it has a `sid` column, else None (no SIDs)."""
    if sids_path:
        return Path(sids_path)
    posts = Path(logs_path) / POSTS_FILE
    if Path(logs_path).is_dir() and posts.exists() and "sid" in pl.read_parquet_schema(posts):
        return posts
    return None


def posts_file(path: str | Path) -> Path:
    """A log directory's posts table, or `path` itself (a posts Parquet file); must exist."""
    p = Path(path)
    if p.is_dir():
        p = p / POSTS_FILE
    if not p.exists():
        raise FileNotFoundError(f"{path}: no posts Parquet file")
    return p


def _if_exists(p: Path) -> Path | None:
    return p if p.exists() else None
