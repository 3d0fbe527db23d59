"""`foryou state …`: the Redis user state the ingesters keep (social graph, action sequences, post
and author data)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from foryou.app.cli.common import AsJson, console, ctx_settings, fail, group, resolve_infra, show_table

app = group("Redis user state written by the ingesters.")


@app.command("rebuild")
def state_rebuild(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds (0 = no limit)")] = 0.0,
    force: Annotated[
        bool, typer.Option(help="Rebuild even while an ingest service is running (see docs/RELIABILITY.md)")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Re-read every ingester's topic from its start and apply it to Redis again (idempotent: the
    state ends as a first ingestion would have made it), then print what was applied per topic.
    Exit 1 when a topic cannot be read to its end."""
    import redis
    from confluent_kafka import KafkaException

    from foryou.core import redis_client
    from foryou.ingest.runner import INGESTERS
    from foryou.ingest.state_rebuilder import REBUILDS, RebuildError, StateRebuilder, active_groups

    try:
        settings = resolve_infra(ctx_settings(ctx)).require_infra()
    except RuntimeError as e:
        fail(e)
    client = redis_client.connect(settings.redis_url)
    rebuilder = StateRebuilder(settings, client, INGESTERS)
    if not force:
        try:
            running = active_groups(settings, rebuilder.ingesters)
        except KafkaException as e:
            fail(RuntimeError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {e.args[0]}"))
        if running:
            fail(
                RuntimeError(
                    f"an ingest service is running (groups {', '.join(running)}): stop it first, or "
                    f"delete the key {settings.redis_prefix}ingest:epoch and it rebuilds by itself "
                    "(--force to rebuild alongside it anyway)"
                )
            )

    def progress(ingester: str, topic: str, consumed: int) -> None:
        status.update(f"rebuilding user state: {ingester} ({topic}) {consumed:,} messages")

    with console.status("rebuilding user state…") as status:
        try:
            summary = rebuilder.run(progress, timeout_s=timeout or None, count_keys=True)
        except (RebuildError, redis.RedisError) as e:
            console.print(f"[red]rebuild failed:[/red] {e}")
            raise typer.Exit(1) from None
        finally:
            client.close()
    REBUILDS.labels("command").inc()
    if as_json:
        out = {
            "topics": [
                {
                    "ingester": t.ingester,
                    "topic": t.topic,
                    "consumed": t.consumed,
                    "applied": t.applied,
                    "set_aside": t.set_aside,
                    "cleared": t.cleared,
                }
                for t in summary.topics
            ],
            "keys": summary.keys,
            "seconds": round(summary.seconds, 3),
        }
        print(json.dumps(out))  # plain print: machine-readable, never wrapped
        return
    table = Table("ingester", "topic", "consumed", "applied", "set aside", "keys cleared first")
    for t in summary.topics:
        counts = (t.consumed, t.applied, t.set_aside, t.cleared)
        table.add_row(t.ingester, t.topic, *(f"{n:,}" for n in counts))
    show_table(table)
    console.print(
        f"rebuilt in {summary.seconds:.1f} s: {summary.applied:,} messages applied, "
        f"{summary.keys:,} keys under {settings.redis_prefix!r}"
    )
