"""The commands at the root of `foryou` (no group): replay, demo, up, feed and retrain (replay and
retrain live in their own modules).

Registered on the root app by `foryou.app.cli`, in the order of its `TOP_LEVEL` list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from foryou.app.cli.addresses import HOME_MIXER, HomeMixerAddress
from foryou.app.cli.common import console, ctx_settings
from foryou.app.cli.replay import replay
from foryou.app.cli.retrain import retrain

WorldPreset = Annotated[str, typer.Option(help="World size: demo | tiny")]
Retrieval = Annotated[bool, typer.Option(help="Out-of-network retrieval (two-tower + FAISS)")]


def demo(
    ctx: typer.Context,
    preset: WorldPreset = "demo",
    tiny_model: Annotated[bool, typer.Option(help="Tiny ranker and retrieval models (smoke runs)")] = False,
    ranker_max_steps: Annotated[int, typer.Option(help="0 = from the epochs (both stages)")] = 0,
    retrieval_max_steps: Annotated[int, typer.Option(help="0 = from the epochs")] = 0,
    retrieval: Retrieval = True,
    quality_users: Annotated[
        int, typer.Option(help="Feeds scored against the world's ground truth for the summary (0 = none)")
    ] = 100,
) -> None:
    """The main job: embedded Kafka + Redis, synthetic world, ingestion, training, serving, three feeds."""
    from foryou.app.demo import DemoConfig, run_demo
    from foryou.core.logs import setup_logging

    settings = ctx_settings(ctx)
    # the demo narrates on the console; service logs would drown it
    setup_logging("WARNING", json_lines=False)
    config = DemoConfig(
        preset=preset,
        tiny_model=tiny_model,
        ranker_max_steps=ranker_max_steps,
        retrieval_max_steps=retrieval_max_steps,
        retrieval=retrieval,
        quality_users=quality_users,
    )
    result = run_demo(settings, console, config)
    if not all(result["feeds"].values()) or not result["feeds"]:  # type: ignore[union-attr]
        raise typer.Exit(1)


def up(
    ctx: typer.Context,
    preset: WorldPreset = "demo",
    tiny_model: Annotated[bool, typer.Option(help="Tiny ranker and retrieval models")] = False,
    retrieval: Retrieval = True,
) -> None:
    """The demo's services kept running in the foreground until Ctrl-C (embedded infra, world, models)."""
    from foryou.app.demo import DemoConfig, run_demo
    from foryou.core.logs import setup_logging

    setup_logging("WARNING", json_lines=False)
    config = DemoConfig(preset=preset, tiny_model=tiny_model, retrieval=retrieval)
    run_demo(ctx_settings(ctx), console, config, hold=True)


def feed(
    ctx: typer.Context,
    user_id: Annotated[int, typer.Argument(help="Viewer id")],
    address: HomeMixerAddress = HOME_MIXER.default,
    explain: Annotated[
        bool, typer.Option(help="Every candidate with its scores and the filter that removed it")
    ] = False,
) -> None:
    """Request a For You feed from a running home_mixer."""
    import grpc

    from home_mixer.explain import render_feed_table
    from protos import home_mixer_pb2 as hm
    from protos import home_mixer_pb2_grpc

    query = hm.GetScoredPostsRequest(viewer_id=user_id)
    with grpc.insecure_channel(address) as ch:
        stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
        try:
            if explain:
                console.print(
                    render_feed_table(
                        stub.GetDebugScoredPosts(hm.GetDebugScoredPostsRequest(query=query), timeout=10)
                    )
                )
                return
            resp = stub.GetScoredPosts(query, timeout=10)
        except grpc.RpcError as e:
            console.print(f"[red]{e.code().name}[/red]: {e.details()}")
            raise typer.Exit(1) from None
    table = Table(
        "rank", "post", "author", "network", "score", title=f"feed of {user_id} ({resp.request_id})"
    )
    for i, p in enumerate(resp.scored_posts, 1):
        table.add_row(
            str(i),
            str(p.post_id),
            p.screen_name or str(p.author_id),
            "in" if p.in_network else "out",
            f"{p.score:.4f}",
        )
    console.print(table)
    if resp.degraded:
        console.print(f"[yellow]degraded: {', '.join(resp.degraded)}[/yellow]")


# (name, command) in the order `foryou --help` lists them
TOP_LEVEL: list[tuple[str, Callable[..., None]]] = [
    ("replay", replay),
    ("demo", demo),
    ("up", up),
    ("feed", feed),
    ("retrain", retrain),
]
