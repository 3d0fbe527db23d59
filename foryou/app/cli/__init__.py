"""`foryou` command line: one module per command group, assembled here into the `app` that the
`foryou` console script runs (pyproject: `foryou.app.cli:app`).

Group modules import only typer, rich and light core modules at the top; torch, grpc, polars and
the products are imported inside each command so that `foryou --help` stays fast."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from foryou.app.cli import dataset, experiment, index, infra, model, serve, state, toplevel, train, world
from foryou.app.cli import eval as eval_cli
from foryou.app.cli.common import (
    CONTEXT_SETTINGS,
    DEBUG,
    err_console,
    fail,
    load_flag_file,
    user_error_message,
)
from foryou.core.settings import Settings


class _App(typer.Typer):
    """The root app: a user error raised anywhere below (an unreachable service, a missing file, a
    bad value: common.user_error_message) prints one `error:` line and exits 2; `--debug` (or
    FORYOU_DEBUG=1) shows the traceback instead. Exit codes (docs/OPERATIONS.md): 0 ok, 1 a check
    failed (unhealthy, a failed feed) or Ctrl-C, 2 a user error or bad usage."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as e:
            message = None if DEBUG["on"] else user_error_message(e)
            if message is None:
                raise
            message = " ".join(message.split())  # one line, whatever the exception's text
            err_console.print(
                f"[red]error:[/red] {escape(message)}  (--debug shows the traceback)", soft_wrap=True
            )
            sys.exit(2)


app = _App(
    help="foryou: an open For You feed ranking service.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings=CONTEXT_SETTINGS,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"foryou {version('foryou')}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    kafka_bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap (env FORYOU_KAFKA_BOOTSTRAP)")
    ] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL (env FORYOU_REDIS_URL)")] = None,
    data_dir: Annotated[str | None, typer.Option(help="State/data directory (env FORYOU_DATA_DIR)")] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level (env FORYOU_LOG_LEVEL)")] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit"),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the traceback of a user error (env FORYOU_DEBUG=1)"),
    ] = False,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="TOML file of flag values by command, e.g. [serve.phoenix] max_candidates = 2000 "
            "(flags and FORYOU_* env vars take precedence; env FORYOU_CONFIG)",
        ),
    ] = None,
) -> None:
    DEBUG["on"] = debug or os.environ.get("FORYOU_DEBUG", "").lower() in ("1", "true", "yes")
    world_size = os.environ.get("WORLD_SIZE", "1")
    if world_size != "1" and ctx.invoked_subcommand not in (None, "--help", "train"):
        # torchrun & co. start one copy per rank: only training is data-parallel (phoenix/distributed.py,
        # docs/SCALING.md); any other command would run once per rank
        fail(
            ValueError(
                f"WORLD_SIZE={world_size} (a multi-process launcher such as torchrun): only `foryou "
                "train ranker|retrieval` runs distributed; run this command without the launcher"
            )
        )
    if config:
        try:
            ctx.default_map = load_flag_file(config)
        except (OSError, ValueError) as e:
            fail(e)
    # commands read these through common.ctx_settings(ctx)
    try:
        ctx.obj = Settings.from_env(
            kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, data_dir=data_dir, log_level=log_level
        )
    except ValueError as e:  # a bad FORYOU_* value: name it, no traceback
        fail(e)


for _name, _command in toplevel.TOP_LEVEL:
    app.command(_name)(_command)

# the group name is part of every flag's env var (FORYOU_<GROUP>_<COMMAND>_<FLAG>): keep them stable
for _name, _group in (
    ("infra", infra.app),
    ("serve", serve.app),
    ("world", world.app),
    ("train", train.app),
    ("eval", eval_cli.app),
    ("index", index.app),
    ("dataset", dataset.app),
    ("model", model.app),
    ("state", state.app),
    ("experiment", experiment.app),
):
    app.add_typer(_group, name=_name)

__all__ = ["app"]
