"""What every command group shares: the console, the settings from the root options, the env-var
convention, error exits, metrics tables and option types used by more than one group.

Only light imports here: `foryou --help` loads this module, so heavy ones stay inside commands."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from foryou.app import output
from foryou.core.settings import Settings

# Click's automatic env vars: every flag also reads FORYOU_<COMMAND PATH>_<FLAG>,
# e.g. FORYOU_TRAIN_RANKER_EPOCHS for `foryou train ranker --epochs` (docs/OPERATIONS.md).
ENV_PREFIX = "FORYOU"
CONTEXT_SETTINGS: dict[str, Any] = {"auto_envvar_prefix": ENV_PREFIX}

# piped or redirected output is never wrapped: a long path or id stays on one line, whole
console = Console(soft_wrap=not sys.stdout.isatty())
# errors go to stderr, so a script piping stdout (tables, --json) never parses one
err_console = Console(stderr=True, soft_wrap=True)

# `foryou --debug` (or FORYOU_DEBUG=1): user errors show their traceback instead of one line
DEBUG = {"on": False}

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


def load_flag_file(path: str) -> dict[str, Any]:
    """A `--config` TOML file as Click's default map: a table per command path whose keys are flag
    names with underscores (`[serve.phoenix]` / `max_candidates = 2000`). Click applies it below the
    command line and the env vars."""
    import tomllib

    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not a TOML file ({e})") from None


def group(help_text: str) -> typer.Typer:
    """A command group; with no subcommand it prints its help instead of failing."""
    return typer.Typer(help=help_text, no_args_is_help=True)


def ctx_settings(ctx: typer.Context) -> Settings:
    """The settings the root callback built from --kafka-bootstrap etc. (env only when invoked bare)."""
    return ctx.obj if isinstance(ctx.obj, Settings) else Settings.from_env()


def fail(e: Exception) -> NoReturn:
    """A user error (bad path, bad input): one red line and exit code 2, no traceback (with
    `--debug`, the traceback)."""
    if DEBUG["on"]:
        raise e
    message = " ".join(str(e).split())  # one line, whatever the exception's text
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2) from None


# exceptions a user causes (an unreachable service, a missing file, a bad value) that the CLI
# reports in one line without a traceback (exit code 2), by class name where the class lives in a
# module the CLI does not import up front
_USER_ERROR_NAMES = {
    "KafkaException",  # confluent_kafka: broker unreachable, unknown topic
    "RegistryError",  # phoenix.registry
    "CheckpointLoadError",
    "LogError",
    "RebuildError",
    "TlsConfigError",
}
_REDIS_ERRORS = {"ConnectionError", "TimeoutError", "AuthenticationError", "ResponseError"}


def user_error_message(e: BaseException) -> str | None:
    """The one line to print for `e` when it is a user error, else None (a bug: traceback)."""
    from foryou.core.settings import NO_INFRA

    cls = type(e)
    if "grpc" in sys.modules:
        import grpc

        if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
            return f"{e.code().name}: {e.details()}"  # e.g. UNAVAILABLE: failed to connect …
    if cls.__module__.startswith("redis") and cls.__name__ in _REDIS_ERRORS:
        return f"Redis: {e}"
    if any(c.__name__ in _USER_ERROR_NAMES for c in cls.__mro__):
        return str(e)
    if isinstance(e, RuntimeError) and str(e) == NO_INFRA:
        return NO_INFRA
    if isinstance(e, OSError | ValueError | OverflowError | TimeoutError | LookupError):
        if isinstance(e, KeyError | IndexError):  # lookups in our own data: a bug
            return None
        return f"{e}" if str(e) else cls.__name__
    return None


def show_table(table: Table, con: Console | None = None) -> None:
    """Every table the CLI prints, on `con` (default: the CLI's console): foryou.app.output."""
    output.show_table(table, con or console)


def print_json(obj: Any) -> None:
    """Machine-readable output for `--json`: one JSON document on stdout, never wrapped."""
    print(json.dumps(obj, default=str))


def proto_dict(msg: Any) -> dict[str, Any]:
    """A protobuf message as the proto3 JSON mapping (field names as in the .proto; 64-bit ints
    are strings, as grpcurl and every proto3 JSON client print them)."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(msg, preserving_proto_field_name=True)


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


SUMMARY_MAX_ROWS = 40  # more metrics than this: print_metrics shows the summary only
SUMMARY_ACTIONS = ("favorite", "reply", "retweet")  # the headline actions of a per-action table
_SMALL_GROUP = 8  # a group of at most this many numbers is shown whole in the summary


def metric_name(key: str) -> str:
    """One name per action in every output: an enum name (SERVER_TWEET_FAV, as older registries and
    eval.json files have them) or an old alias (repost) becomes the short name of
    foryou.core.actions; any other key is kept."""
    from foryou.core.actions import short_action_name

    return short_action_name(key)


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, int | float]:
    """Nested metrics as {"a.b.c": number} (action names made one); non-numeric leaves skipped."""
    out: dict[str, int | float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{metric_name(str(k))}"
        if isinstance(v, dict):
            out.update(flatten_metrics(v, f"{key}."))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[key] = v
    return out


def summarize_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, int | float]:
    """The short version: top-level numbers, `headline` whole, small groups whole, per-action
    groups for SUMMARY_ACTIONS only, a nested `eval` summarized the same way; the big tables
    (per-action metrics of every scorer, segments) are left to the JSON."""
    out: dict[str, int | float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{metric_name(str(k))}"
        if k in ("config", "history"):
            continue
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[key] = v
        elif isinstance(v, dict) and k == "eval":
            out.update(summarize_metrics(v, f"{key}."))
        elif isinstance(v, dict):
            flat = flatten_metrics(v, f"{key}.")
            if k == "headline" or len(flat) <= _SMALL_GROUP:
                out.update(flat)
            elif all(isinstance(x, int | float) for x in v.values()):
                out.update(
                    {f"{key}.{metric_name(a)}": x for a, x in v.items() if metric_name(a) in SUMMARY_ACTIONS}
                )
    return out


def print_metrics(title: str, metrics: dict[str, Any], full: str = "") -> None:
    """Nested metrics as one flat `a.b.c  value` table; non-numeric leaves are skipped. More than
    SUMMARY_MAX_ROWS of them: the summary (summarize_metrics) only, with a caption naming `full`
    (where all of them are: a JSON file, `--json`)."""
    flat = flatten_metrics(metrics)
    rows = flat
    table = Table(title=title)
    if len(flat) > SUMMARY_MAX_ROWS:
        rows = summarize_metrics(metrics)
        table.caption = f"a summary: {len(rows)} of {len(flat)} metrics; all of them in {full or 'the JSON'}"
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in rows.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    show_table(table)


def resolve_infra(settings: Settings) -> Settings:
    """Kafka/Redis from flags or env, else from the embedded infrastructure `foryou infra up` started."""
    from foryou.app.infra import resolve  # lazy: keeps `foryou --help` free of Kafka/Redis imports

    return resolve(settings)
