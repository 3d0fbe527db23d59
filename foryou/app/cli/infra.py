"""`foryou infra …`: start, stop and check the embedded Kafka broker and Redis."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from foryou.app.cli.common import AsJson, console, ctx_settings, fail, group, show_table
from foryou.core.settings import redact_url

app = group("Embedded Kafka broker + Redis on free local ports.")


@app.command("up")
def infra_up(ctx: typer.Context) -> None:
    """Start the embedded broker and Redis (unless external ones are configured) and create topics."""
    from foryou.app import infra

    settings = ctx_settings(ctx)
    with console.status("starting Kafka broker and Redis…"):
        state = infra.up(settings)
    console.print(f"kafka bootstrap: [bold]{state.kafka_bootstrap}[/bold]")
    console.print(f"redis url:       [bold]{redact_url(state.redis_url)}[/bold]")
    console.print(f"state file:      {infra.state_path(settings)}")


@app.command("down")
def infra_down(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option(help="Stop them even while a running `foryou up` / `foryou demo` uses them")
    ] = False,
) -> None:
    """Stop exactly the processes `infra up` started; refuses (exit 2) while a running `foryou up`
    or `foryou demo` depends on them, unless --force."""
    from foryou.app import infra

    try:
        stopped = infra.down(ctx_settings(ctx), force=force)
    except infra.InfraInUse as e:
        fail(e)
    console.print("stopped embedded broker and Redis" if stopped else "nothing recorded as running")


@app.command("status")
def infra_status(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Report Kafka and Redis health; exit code 1 when unhealthy."""
    from foryou.app import infra

    st = infra.status(ctx_settings(ctx))
    if as_json:
        print(json.dumps(st))  # plain print: machine-readable, never wrapped
    else:
        table = Table("component", "address", "status")
        table.add_row("kafka", st["kafka_bootstrap"] or "-", st["kafka"])
        table.add_row("redis", st["redis_url"] or "-", st["redis"])
        show_table(table)
        if st["topics"]:
            # hide Kafka's internal topics (__consumer_offsets …)
            console.print("topics: " + ", ".join(t for t in st["topics"] if not t.startswith("__")))
        console.print("[green]healthy[/green]" if st["healthy"] else "[red]unhealthy[/red]")
    raise typer.Exit(0 if st["healthy"] else 1)
