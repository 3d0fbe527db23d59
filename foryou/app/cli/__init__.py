"""`foryou` command line: one module per command group, assembled here into the `app` that the
`foryou` console script runs (pyproject: `foryou.app.cli:app`).

Group modules import only typer, rich and light core modules at the top; torch, grpc, polars and
the products are imported inside each command so that `foryou --help` stays fast."""

from __future__ import annotations

from typing import Annotated

import typer

from foryou.app.cli import dataset, index, infra, model, serve, toplevel, train, world
from foryou.app.cli import eval as eval_cli
from foryou.app.cli.common import CONTEXT_SETTINGS, fail
from foryou.core.settings import Settings

app = typer.Typer(
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
) -> None:
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
):
    app.add_typer(_group, name=_name)

__all__ = ["app"]
