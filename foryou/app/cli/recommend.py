"""`foryou recommend`: batch scoring, the top K posts per user into a Parquet file (phoenix.recommend)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from foryou.app.cli.common import Logs, console, fail, show_table


def recommend(
    users: Annotated[str, typer.Option(help="Parquet or CSV with a user_id column")],
    logs: Logs,
    out: Annotated[str, typer.Option(help="Output Parquet: user_id, rank, post_id, author_id, score")],
    retrieval: Annotated[
        str, typer.Option(help="Retrieval checkpoint: candidates = its top --retrieve")
    ] = "",
    ranker: Annotated[str, typer.Option(help="Ranker checkpoint: re-ranks the candidates")] = "",
    candidates: Annotated[
        str,
        typer.Option(help="Instead of --retrieval: Parquet/CSV user_id, post_id[, author_id] for the ranker"),
    ] = "",
    top_k: Annotated[int, typer.Option(help="Posts per user")] = 10,
    retrieve: Annotated[int, typer.Option(help="Retrieval's top N handed to the ranker")] = 100,
    now_ms: Annotated[
        int, typer.Option(help="Time candidates are aged at (epoch ms); 0 = now, as served")
    ] = 0,
    probabilities: Annotated[
        bool, typer.Option("--probabilities", help="Add p_<action> columns (the ranker's positive heads)")
    ] = False,
    sids: Annotated[
        str, typer.Option(help="Parquet post_id + sid; default: the log directory's posts table")
    ] = "",
) -> None:
    """Score users offline with the served models: retrieval's top N re-ranked by the ranker (or
    either alone, or the ranker over a candidates file); the scores equal the services' own."""
    from phoenix.recommend import (
        RecommendConfig,
        read_candidates,
        read_users,
        recommend,
        write_recommendations,
    )

    cfg = RecommendConfig(
        top_k=top_k, retrieve=retrieve, now_ms=now_ms or None, probabilities=probabilities, sids_path=sids
    )
    try:
        user_ids = read_users(users)
        cands = read_candidates(candidates) if candidates else None
        with console.status(f"scoring {len(user_ids):,} users…"):
            df = recommend(user_ids, logs, retrieval or None, ranker or None, cands, cfg)
        write_recommendations(df, out)
    except (FileNotFoundError, ValueError) as e:
        fail(e)
    table = Table("users", "rows", "out", title="recommend")
    table.add_row(f"{df['user_id'].n_unique():,}", f"{df.height:,}", out)
    show_table(table)
