"""The commands at the root of `foryou` (no group): replay, demo, up, feed, retrain and
simulate (replay, retrain and simulate live in their own modules).

Registered on the root app by `foryou.app.cli`, in the order of its `TOP_LEVEL` list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from foryou.app.cli.addresses import ClientAddress, client_address
from foryou.app.cli.call import call
from foryou.app.cli.common import AsJson, console, ctx_settings, fail, print_json, proto_dict, show_table
from foryou.app.cli.recommend import recommend
from foryou.app.cli.replay import replay
from foryou.app.cli.retrain import retrain
from foryou.app.cli.simulate import simulate
from foryou.app.cli.ui import ui

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
    as_json: Annotated[
        bool, typer.Option("--json", help="The summary as JSON on stdout (the narration goes to stderr)")
    ] = False,
) -> None:
    """The main job: embedded Kafka + Redis, synthetic world, ingestion, training, serving, three feeds.
    Ctrl-C stops it at any stage (exit code 130)."""
    from foryou.app.demo import DemoConfig, DemoStopped, run_demo
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
    out = Console(stderr=True, soft_wrap=console.soft_wrap) if as_json else console
    try:
        result = run_demo(settings, out, config)
    except DemoStopped:
        raise typer.Exit(130) from None
    if as_json:
        print_json(result)
    feeds = result["feeds"]
    if not isinstance(feeds, dict) or not feeds or not all(feeds.values()):
        raise typer.Exit(1)


# `foryou up --ports`: the offset of each service from the base port
PORT_OFFSETS = {"home_mixer": 0, "thunder": 1, "retrieval": 2, "ranker": 3, "metrics": 5}
FIXED_BASE = 50050  # = the `foryou serve` defaults (foryou.app.cli.addresses)


def up_ports(value: str) -> dict[str, int]:
    """`--ports fixed | free | BASE` as {service: port} (0 = a free one)."""
    v = value.strip().lower()
    if v == "free":
        return dict.fromkeys(PORT_OFFSETS, 0)
    if v != "fixed" and not (v.isdigit() and 1024 <= int(v) <= 65535 - 5):
        raise ValueError(f"--ports {value!r}: expected fixed, free or a base port (1024-65530)")
    base = FIXED_BASE if v == "fixed" else int(v)
    return {name: base + offset for name, offset in PORT_OFFSETS.items()}


def _check_free(ports: dict[str, int]) -> None:
    """Fail before anything starts (minutes before the services would bind) when a port is taken."""
    import socket

    for name, port in ports.items():
        if not port:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                fail(
                    ValueError(
                        f"port {port} ({name}) is taken (another `foryou up` or `foryou serve`?); "
                        "`--ports free` picks free ports, `--ports N` ports from N"
                    )
                )


def up(
    ctx: typer.Context,
    preset: WorldPreset = "demo",
    tiny_model: Annotated[bool, typer.Option(help="Tiny ranker and retrieval models")] = False,
    retrieval: Retrieval = True,
    ports: Annotated[
        str,
        typer.Option(
            help="fixed: home_mixer 50050, thunder 50051, retrieval 50052, ranker 50053, /metrics "
            "50055; free: free ports; N: N, N+1, N+2, N+3 and N+5. The addresses are written to "
            "<data dir>/addresses.json either way"
        ),
    ] = "fixed",
    ui_port: Annotated[
        int, typer.Option(help="Port of the web page (`foryou ui`); taken or 0: a free port")
    ] = 8080,
) -> None:
    """The demo's services kept running in the foreground until Ctrl-C (embedded infra, world, models),
    with the web page and /metrics; their addresses go to <data dir>/addresses.json, where `foryou
    feed`, `foryou ui` and `foryou call` find them. Exits 1 (with an error line) when its Kafka or
    Redis goes away, 0 on Ctrl-C."""
    from foryou.app.demo import DemoConfig, DemoStopped, InfraLost, run_demo
    from foryou.core.logs import setup_logging

    try:
        chosen = up_ports(ports)
    except ValueError as e:
        fail(e)
    _check_free(chosen)
    setup_logging("WARNING", json_lines=False)
    config = DemoConfig(
        preset=preset,
        tiny_model=tiny_model,
        retrieval=retrieval,
        ui_port=ui_port,
        listen={k: f"127.0.0.1:{v}" for k, v in chosen.items() if k != "metrics"},
        metrics_port=chosen["metrics"],
    )
    try:
        run_demo(ctx_settings(ctx), console, config, hold=True)
    except DemoStopped:
        return  # Ctrl-C is how `up` ends
    except InfraLost as e:
        console.print(f"[bold red]error:[/bold red] {e}; stopped serving", soft_wrap=True)
        raise typer.Exit(1) from None


def feed(
    ctx: typer.Context,
    user_id: Annotated[int, typer.Argument(help="Viewer id")],
    address: ClientAddress = None,
    explain: Annotated[
        bool,
        typer.Option(
            help="Every candidate with its scores; the removed ones with the filter that removed each"
        ),
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            help="With --explain: candidates scored but not selected shown (0 = all); served and "
            "removed candidates are always all shown"
        ),
    ] = 20,
    as_json: AsJson = False,
) -> None:
    """Request a For You feed from a running home_mixer (by default the running `foryou up`'s)."""
    import grpc

    from foryou.app.feed_client import get_debug_feed, get_feed

    settings = ctx_settings(ctx)
    address = client_address("home_mixer", address, settings.data_dir)
    try:
        if explain:
            debug = get_debug_feed(address, settings, user_id)
            if as_json:
                print_json(proto_dict(debug))
            else:
                _print_explain(debug, limit)
            return
        resp = get_feed(address, settings, user_id)
    except grpc.RpcError as e:
        fail(ValueError(f"home_mixer at {address}: {e.code().name}: {' '.join(str(e.details()).split())}"))
    if as_json:
        print_json(proto_dict(resp))
        return
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
    show_table(table)
    if resp.degraded:
        console.print(f"[yellow]degraded: {', '.join(resp.degraded)}[/yellow]")


def _print_explain(resp: Any, limit: int) -> None:
    """The explain table: served posts in order, the `limit` best-scored candidates not selected,
    then every removed candidate with its filter; and the removed count per filter."""
    from home_mixer.explain import render_feed_table

    cands = list(resp.candidates)
    not_selected = sorted(
        (i for i, c in enumerate(cands) if c.outcome == "not_selected"), key=lambda i: -cands[i].final_score
    )
    hidden = len(not_selected) - limit if limit and len(not_selected) > limit else 0
    drop = set(not_selected[len(not_selected) - hidden :]) if hidden else set()
    shown = type(resp)()
    shown.CopyFrom(resp)
    del shown.candidates[:]
    shown.candidates.extend(c for i, c in enumerate(cands) if i not in drop)
    table = render_feed_table(shown, max_rows=len(shown.candidates))
    if hidden:
        table.caption = f"{hidden} more candidates scored but not selected (--limit 0 shows them)"
    show_table(table)
    removed: dict[str, int] = {}
    for c in resp.candidates:
        if c.outcome == "filtered":
            removed[c.filtered_by or "?"] = removed.get(c.filtered_by or "?", 0) + 1
    if removed:
        console.print("removed: " + ", ".join(f"{name} {n}" for name, n in sorted(removed.items())))


# (name, command) in the order `foryou --help` lists them
TOP_LEVEL: list[tuple[str, Callable[..., None]]] = [
    ("replay", replay),
    ("demo", demo),
    ("up", up),
    ("feed", feed),
    ("call", call),
    ("ui", ui),
    ("retrain", retrain),
    ("simulate", simulate),
    ("recommend", recommend),
]
