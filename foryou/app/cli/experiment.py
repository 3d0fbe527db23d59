"""`foryou experiment report`: per-bucket engagement rates (from the served ⨝ engagements log) and
ground truth (from a simulator run), with confidence intervals and the difference to control, as
tables and a PNG (foryou.app.experiment_report; docs/simulator.md, "Experiments")."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from foryou.app.cli.common import console, fail, group, show_table

if TYPE_CHECKING:
    import polars as pl
    from rich.table import Table

app = group("Experiments: per-bucket reports.")


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:+.1%}" if pct else f"{x:.4g}"


def bucket_table(title: str, rows: pl.DataFrame, n_col: str) -> Table:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in ("bucket", "users", n_col, "metric", "value", "95% CI", "Δ vs control", "Δ 95% CI", "Δ %", ""):
        t.add_column(col, justify="left" if col in ("bucket", "metric") else "right")
    for r in rows.iter_rows(named=True):
        is_ctl = r["diff"] is None
        sig = "" if is_ctl else ("[red]significant[/red]" if r["significant"] else "n.s.")
        t.add_row(
            r["bucket"] + (" (control)" if is_ctl else ""),
            str(r["users"]),
            f"{r[n_col]:,}",
            r["metric"],
            _fmt(r["value"]),
            f"{_fmt(r['ci_low'])} … {_fmt(r['ci_high'])}",
            "" if is_ctl else _fmt(r["diff"]),
            "" if is_ctl else f"{_fmt(r['diff_low'])} … {_fmt(r['diff_high'])}",
            "" if is_ctl else _fmt(r["rel_diff"], pct=True),
            sig,
        )
    return t


@app.command("report")
def report(
    sim: Annotated[
        str,
        typer.Option(
            help="A `foryou simulate` run directory: its feeds.parquet (ground truth) and experiment-log/"
        ),
    ] = "",
    log: Annotated[
        str,
        typer.Option(help="Training log (`foryou dataset build` output: a log directory or Parquet file)"),
    ] = "",
    experiment: Annotated[
        str, typer.Option(help="Experiment name (default: the only one in the records)")
    ] = "",
    control: Annotated[str, typer.Option(help="Control bucket (default: 'control', else the first)")] = "",
    png: Annotated[str, typer.Option(help="Write the plot here (default: <sim>/experiment-<name>.png)")] = "",
) -> None:
    """Per bucket: impressions, engagement rates per action and the realized weighted score (from
    the log), the served feeds' true P(favorite) / P(negative) (from a simulation), each with a 95%
    confidence interval (clustered by user) and the difference to control."""
    import polars as pl

    from foryou.app import experiment_report as er

    if not sim and not log:
        fail(ValueError("give --sim RUN_DIR and/or --log LOG"))
    log_path = Path(log) if log else Path(sim) / er.SIM_LOG_DIR if sim else None
    log_rows = sim_rows = lift = None
    name = experiment
    try:
        if log_path is not None and (log_path.exists() or log):
            name, log_rows = er.log_report(er.read_log(log_path), experiment, control)
            show_table(
                bucket_table(f"experiment {name}: logged engagements ({log_path})", log_rows, "impressions")
            )
        if sim:
            feeds = pl.read_parquet(Path(sim) / "feeds.parquet")
            name, sim_rows = er.sim_report(feeds, name or experiment, control)
            title = f"experiment {name}: ground truth of the served feeds ({sim})"
            show_table(bucket_table(title, sim_rows, "feeds"))
            lift = er.lift_by_round(feeds, name)
    except (OSError, ValueError, pl.exceptions.PolarsError) as e:
        fail(e)
    out = Path(png) if png else (Path(sim) if sim else Path(".")) / f"experiment-{name}.png"
    er.plot_report(out, name, log_rows, sim_rows, lift)
    console.print(f"plot: {out}", highlight=False)
