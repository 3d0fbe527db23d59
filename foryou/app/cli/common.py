"""What every command group shares: the console, the settings from the root options, the env-var
convention, error exits, metrics tables and option types used by more than one group.

Only light imports here: `foryou --help` loads this module, so heavy ones stay inside commands."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
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
ModelsRoot = Annotated[
    str | None, typer.Option("--models", help="Models root (registry); default: <data dir>/models")
]
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


def models_root(ctx: typer.Context, models: str | None) -> Path:
    """`--models`, else the registry under the data directory (FORYOU_DATA_DIR / --data-dir)."""
    return Path(models) if models else Path(ctx_settings(ctx).data_dir) / "models"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$")
_AGO = re.compile(r"^-?\s*(.+?)(?:\s+ago)?$")


def parse_duration_ms(text: str) -> int:
    """`30m`, `1.5h`, `7d`, `90s`, `250ms`; a bare number is milliseconds."""
    t = text.strip().lower()
    if t.isdigit():
        return int(t)
    m = _DURATION.match(t)
    if m is None:
        raise ValueError(f"cannot read {text!r} as a duration (e.g. 30m, 24h, 7d, or milliseconds)")
    return round(float(m[1]) * _UNIT_MS[m[2]])


def parse_time_ms(text: str, now_ms: int | None = None) -> int:
    """A point in time as epoch ms: digits are epoch milliseconds (what the flags always took),
    `now`, a duration before now (`24h`, `-24h`, `24h ago`), or ISO-8601 (`2025-01-31`,
    `2025-01-31T12:00:00+01:00`; no zone = UTC)."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if t.lower() == "now":
        return now
    m = _AGO.match(t.lower())
    if m is not None and _DURATION.match(m[1]):
        return now - parse_duration_ms(m[1])
    try:
        when = dt.datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: epoch ms, ISO-8601 (2025-01-31T12:00:00Z), "
            "`now`, or a duration ago (24h, 7d)"
        ) from None
    if when.tzinfo is None:  # Kafka timestamps are UTC: a local reading would shift the window
        when = when.replace(tzinfo=dt.UTC)
    return (when - _EPOCH) // dt.timedelta(milliseconds=1)  # exact: a float would lose the ms


def iso_ms(ms: int | None) -> str:
    """Epoch ms as a short UTC time for tables ("" for None)."""
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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


def resolve_infra(settings: Settings) -> Settings:
    """Kafka/Redis from flags or env, else from the embedded infrastructure `foryou infra up` started."""
    from foryou.app.infra import resolve  # lazy: keeps `foryou --help` free of Kafka/Redis imports

    return resolve(settings)
