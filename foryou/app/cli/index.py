"""`foryou index …`: build and inspect retrieval FAISS index snapshots; build semantic ids."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from foryou.app.cli.common import AsJson, console, fail, group, show_table

app = group("Retrieval FAISS index snapshots and semantic ids.")

INDEX_KINDS = ("pq", "ivf", "hnsw")


@app.command("build")
def index_build_cmd(
    model: Annotated[str, typer.Option(help="Retrieval checkpoint directory")],
    posts: Annotated[str, typer.Option(help="World directory or posts Parquet file")],
    out: Annotated[str, typer.Option(help="Snapshot directory (replaced atomically)")],
    exact_max_size: Annotated[int, typer.Option(help="Above this many posts: --kind")] = 100_000,
    kind: Annotated[str, typer.Option(help="Large-index type: pq | ivf | hnsw")] = "pq",
    nprobe: Annotated[int, typer.Option(help="IVF lists searched per query")] = 48,
    hnsw_m: Annotated[int, typer.Option()] = 32,
    ef_construction: Annotated[int, typer.Option()] = 64,
    now_ms: Annotated[
        int, typer.Option(help="Drop posts older than retention at this time; 0 = keep all")
    ] = 0,
) -> None:
    """Embed every post with the candidate tower and write a FAISS index snapshot."""
    from phoenix.retrieval.bulk_builder import build_index_snapshot
    from phoenix.retrieval.index import IndexConfig

    if kind not in INDEX_KINDS:
        raise typer.BadParameter("kind must be pq, ivf or hnsw")
    cfg = IndexConfig(
        exact_max_size=exact_max_size,
        large_kind=kind,
        ivf_nprobe=nprobe,
        hnsw_m=hnsw_m,
        ef_construction=ef_construction,
    )
    with console.status("embedding posts and building the index…"):
        try:
            stats = build_index_snapshot(model, posts, out, cfg, now_ms)
        except (FileNotFoundError, ValueError) as e:
            fail(e)
    console.print(f"wrote {stats['kind']} index of {stats['posts']:,} posts to {out}")
    _print_index_stats(stats)


@app.command("stats")
def index_stats_cmd(
    snapshot: Annotated[str, typer.Argument(help="Snapshot directory (index build, or the live service's)")],
    as_json: AsJson = False,
) -> None:
    """Post count, index type, memory bytes, build seconds and model version of a snapshot."""
    from phoenix.retrieval.index import read_snapshot_meta

    try:
        meta = read_snapshot_meta(snapshot)
    except FileNotFoundError as e:
        fail(e)
    if as_json:
        print(json.dumps(meta))  # plain print: machine-readable, never wrapped
    else:
        _print_index_stats(meta)


@app.command("sids")
def index_sids_cmd(
    items: Annotated[str, typer.Option(help="Item features table (Parquet or CSV) with post_id")],
    out: Annotated[str, typer.Option(help="Output Parquet: post_id + sid (what --sids reads)")],
    columns: Annotated[
        str, typer.Option(help="Comma-separated feature columns; default: all but ids and *_ms")
    ] = "",
    levels: Annotated[int, typer.Option(help="Codes per item (residual k-means levels)")] = 2,
    codebook: Annotated[int, typer.Option(help="Clusters per level (at most the models' 256)")] = 256,
    text_dim: Annotated[int, typer.Option(help="Hash buckets per text column")] = 64,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Semantic ids from item features (numbers, embeddings, text) by residual k-means (docs/ranker.md)."""
    from pathlib import Path

    from phoenix.ranker.sid_builder import SidBuildConfig, build_sids, read_items

    cols = tuple(c.strip() for c in columns.split(",") if c.strip())
    cfg = SidBuildConfig(levels=levels, codebook=codebook, text_dim=text_dim, columns=cols, seed=seed)
    try:
        with console.status("clustering item features…"):
            sids = build_sids(read_items(items), cfg)
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        sids.write_parquet(tmp)
        tmp.replace(path)
    except (FileNotFoundError, ValueError) as e:
        fail(e)
    first = sids["sid"].list.first()
    table = Table("items", "levels", "distinct level-1 codes", "distinct SIDs", "out", title="semantic ids")
    table.add_row(
        f"{sids.height:,}", str(levels), f"{first.n_unique():,}", f"{sids['sid'].n_unique():,}", out
    )
    show_table(table)


def _print_index_stats(meta: dict) -> None:
    table = Table("field", "value", title="retrieval index")
    for k in ("posts", "kind", "dim", "memory_bytes", "build_seconds", "embed_seconds", "model_version"):
        if k in meta:
            v = meta[k]
            table.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    show_table(table)
