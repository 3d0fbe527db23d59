"""What every command group shares: the console, the settings from the root options, the env-var
convention, error exits, metrics tables and option types used by more than one group.

Only light imports here: `foryou --help` loads this module, so heavy ones stay inside commands."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from foryou.core.settings import Settings

# Click's automatic env vars: every flag also reads FORYOU_<COMMAND PATH>_<FLAG>,
# e.g. FORYOU_TRAIN_RANKER_EPOCHS for `foryou train ranker --epochs` (docs/OPERATIONS.md).
ENV_PREFIX = "FORYOU"
CONTEXT_SETTINGS: dict[str, Any] = {"auto_envvar_prefix": ENV_PREFIX}

console = Console()

# option types shared by several groups (typer copies the OptionInfo, so reuse is safe)
Logs = Annotated[str, typer.Option(help="Engagement log Parquet, or a world directory")]
CheckpointDir = Annotated[str, typer.Option(help="Checkpoint directory")]
AsJson = Annotated[bool, typer.Option("--json")]
MetricsPort = Annotated[int, typer.Option(envvar=f"{ENV_PREFIX}_METRICS_PORT")]
ServeSids = Annotated[
    str,
    typer.Option(envvar=f"{ENV_PREFIX}_SIDS_PATH", help="Parquet of post_id + sid (a world's posts.parquet)"),
]


def group(help_text: str) -> typer.Typer:
    """A command group; with no subcommand it prints its help instead of failing."""
    return typer.Typer(help=help_text, no_args_is_help=True)


def ctx_settings(ctx: typer.Context) -> Settings:
    """The settings the root callback built from --kafka-bootstrap etc. (env only when invoked bare)."""
    return ctx.obj if isinstance(ctx.obj, Settings) else Settings.from_env()


def fail(e: Exception) -> NoReturn:
    """A user error (bad path, bad input): one red line and exit code 2, no traceback."""
    console.print(f"[red]error:[/red] {e}")
    raise typer.Exit(2) from None


def print_metrics(title: str, metrics: dict) -> None:
    """Nested metrics as one flat `a.b.c  value` table; non-numeric leaves are skipped."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")

    def walk(prefix: str, d: dict) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            elif isinstance(v, int | float):
                table.add_row(f"{prefix}{k}", f"{v:.4f}" if isinstance(v, float) else str(v))

    walk("", metrics)
    console.print(table)
