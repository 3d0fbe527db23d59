"""One Parquet file from a replay directory, for readers that take a single file (`foryou train
ranker --logs FILE` on an `engagements` replay, whose columns are the training log's)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from foryou.app.replay.manifest import read_manifest, replay_files
from foryou.app.replay.schemas import SCHEMAS


def merge_parts(out_dir: str | Path, path: str | Path) -> int:
    """Stream the parts of a finished replay into `path` (written to a temporary file, then
    renamed; memory bounded by polars' streaming sink). Returns the rows written."""
    files = replay_files(out_dir)
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    if files:
        pl.scan_parquet(files).sink_parquet(tmp, compression="zstd", maintain_order=True)
    else:  # an empty window still gets its topic's columns
        m = read_manifest(out_dir)
        schema = SCHEMAS[m.topic].schema if m is not None else pl.Schema()
        pl.DataFrame(schema=schema).write_parquet(tmp)
    tmp.replace(dest)
    return pl.scan_parquet(dest).select(pl.len()).collect().item()
