"""`foryou dataset …`: the training dataset from the `served` and `engagements` replays
(foryou.app.dataset; rules in docs/OPERATIONS.md, "Replay and the training dataset")."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from foryou.app.cli.common import (
    AsJson,
    console,
    fail,
    group,
    iso_ms,
    parse_duration_ms,
    parse_time_ms,
    show_table,
)

app = group("Training datasets from replays.")


@app.command("build")
def dataset_build(
    served: Annotated[
        str, typer.Option(help="`foryou replay served` directory (or Parquet file / directory)")
    ],
    engagements: Annotated[str, typer.Option(help="`foryou replay engagements` directory (or Parquet)")],
    out: Annotated[str, typer.Option(help="Output Parquet file (the training log schema)")],
    attribution_window: Annotated[
        str,
        typer.Option(help="An engagement counts for the latest impression this long before it (30m, 1h, ms)"),
    ] = "30m",
    engagements_until: Annotated[
        str | None,
        typer.Option(
            help="The engagement log is complete before this time (default: the engagement replay's "
            "`until`); epoch ms, ISO-8601 or a duration ago"
        ),
    ] = None,
    rows_per_bucket: Annotated[
        int, typer.Option(help="Join bucket size: bounds memory (~400 MB per 1M)")
    ] = 1_000_000,
    as_json: AsJson = False,
) -> None:
    """Join served impressions with the engagements that follow them: one IMPRESSION row per
    impression, one row per attributed action (the log `train ranker --logs` reads)."""
    from foryou.app.dataset import build_dataset

    try:
        window_ms = parse_duration_ms(attribution_window)
        until_ms = None if engagements_until is None else parse_time_ms(engagements_until)
        with console.status("joining served impressions with engagements…"):
            s = build_dataset(
                served,
                engagements,
                out,
                window_ms,
                engagements_until_ms=until_ms,
                rows_per_bucket=rows_per_bucket,
            )
    except (FileNotFoundError, ValueError, OSError) as e:
        fail(e)
    counts = {
        k: getattr(s, k)
        for k in (
            "rows",
            "impressions",
            "positives",
            "served",
            "duplicate_impressions",
            "censored_impressions",
            "engagements",
            "unattributed",
            "duplicate_actions",
            "censored_actions",
            "buckets",
        )
    }
    if as_json:
        info = {"out": str(s.out), **counts, "seconds": round(s.seconds, 3)}
        print(json.dumps({**info, "engagements_until_ms": s.engagements_until_ms}))
        return
    table = Table("", "count", title=f"dataset {s.out}")
    table.columns[1].justify = "right"
    for k, v in counts.items():
        table.add_row(k.replace("_", " "), f"{v:,}")
    show_table(table)
    until = (
        iso_ms(s.engagements_until_ms) if s.engagements_until_ms is not None else "none (nothing censored)"
    )
    console.print(f"engagement log complete before: {until}; {s.seconds:.1f} s")
