"""`foryou world …`: generate a synthetic world to Parquet and publish it to Kafka."""

from __future__ import annotations

from typing import Annotated

import typer

from foryou.app.cli.common import console, ctx_settings, group, resolve_infra

app = group("Synthetic world: generate to Parquet, publish to Kafka.")

WORLD_PRESETS = ("tiny", "demo")


@app.command("generate")
def world_generate(
    out: Annotated[str, typer.Option(help="Output directory")],
    preset: Annotated[str, typer.Option(help="tiny | demo")] = "demo",
    seed: Annotated[int, typer.Option()] = 0,
    now_ms: Annotated[int | None, typer.Option(help="World clock (default: now)")] = None,
) -> None:
    """Generate a deterministic synthetic world (posts, engagement log, graph, oracle) as Parquet."""
    import time

    from world import WorldConfig, generate_world

    if preset not in WORLD_PRESETS:
        raise typer.BadParameter("preset must be tiny or demo")
    cfg = getattr(WorldConfig, preset)(seed=seed, now_ms=now_ms or int(time.time() * 1000))
    with console.status(f"generating the {preset} world…"):
        world = generate_world(cfg)
        path = world.save(out)
    console.print(
        f"wrote {world.posts.height:,} posts, {world.engagements.height:,} engagement rows to {path}"
    )


@app.command("publish")
def world_publish(
    ctx: typer.Context,
    world_dir: Annotated[str, typer.Option("--world", help="Directory written by `world generate`")],
    rate: Annotated[
        float | None, typer.Option(help="Events per second (default: as fast as possible)")
    ] = None,
) -> None:
    """Publish a world to the `posts`, `engagements` and `user-events` topics in time order."""
    import time

    from world import World
    from world.publish import publish_world

    # shift the world's clock to now so the services' retention windows keep its posts
    world = World.load(world_dir).rebased(int(time.time() * 1000))
    stats = publish_world(world, resolve_infra(ctx_settings(ctx)), rate=rate, progress=True)
    console.print(f"published: {stats}")
