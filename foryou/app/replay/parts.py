"""Part files: rows buffered up to `part_rows`, then one zstd Parquet file written atomically
(`part-00000.parquet`, `part-00001.parquet`, …). The buffer is the replay's only growing memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from foryou.app.replay.manifest import MANIFEST, PartFile

PART_GLOB = "part-*.parquet"


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def write_part(out_dir: Path, index: int, rows: list[tuple[Any, ...]], schema: pl.Schema) -> PartFile:
    df = pl.DataFrame(rows, schema=schema, orient="row")
    path = out_dir / part_name(index)
    tmp = path.with_name(path.name + ".tmp")
    df.write_parquet(tmp, compression="zstd")
    with open(tmp, "rb+") as f:  # on disk before the manifest that lists it
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return PartFile(file=path.name, rows=len(rows), bytes=path.stat().st_size)


def remove_orphans(out_dir: Path, listed: set[str], has_manifest: bool) -> list[str]:
    """Delete what an interrupted run left beyond its manifest: temporary files and part files
    written after the last manifest update (the resumed run writes them again)."""
    parts = {p.name for p in out_dir.glob(PART_GLOB)}
    if parts and not has_manifest:
        raise ValueError(f"{out_dir} holds part files but no {MANIFEST}: not a replay directory")
    removed = sorted(parts - listed)
    for name in removed:
        (out_dir / name).unlink()
    for tmp in out_dir.glob("*.tmp"):
        tmp.unlink()
    return removed
