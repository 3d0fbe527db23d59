"""`foryou demo`: the whole system on embedded infrastructure, end to end.

1. start the embedded Kafka broker and Redis (unless external ones are configured);
2. generate the demo world; start the ingesters and Thunder; publish the world to Kafka and wait
   until everything has caught up;
3. train the ranker (and retrieval model) on the world's engagement log, or reuse a cached
   checkpoint from the data directory when world and config match;
4. start Phoenix and home_mixer, request feeds for three users over gRPC and print them;
5. shut everything down."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from foryou.app import infra
from foryou.app.output import show_table
from foryou.core.settings import Settings, redact_url
from foryou.core.tls import channel
from protos import home_mixer_pb2 as hm
from protos import home_mixer_pb2_grpc
from world import World
from world.feed_quality import feed_truth
from world.ground_truth import GroundTruth

if TYPE_CHECKING:
    from foryou.app.ui import UiServer

SHOWN_ACTIONS = {
    "favorite",
    "reply",
    "retweet",
    "quote",
    "click",
    "profile_click",
    "share",
    "dwell",
    "photo_expand",
    "vqv",
    "follow_author",
}


@dataclass(slots=True)
class DemoConfig:
    preset: str = "demo"  # "tiny" for tests
    seed: int = 0
    num_users: int = 3
    ranker_epochs: float = 2.0  # ranking stage, after one exposure epoch (docs/ranker.md)
    ranker_max_steps: int = 0
    retrieval_max_steps: int = 0
    retrieval_max_seconds: float = 90.0  # a cap for loaded machines; `fast` needs ~20 s on a quiet one
    retrieval: bool = True  # False: in-network feeds only (no two-tower model, no FAISS index)
    tiny_model: bool = False
    quality_users: int = 100  # feeds scored against the world's ground truth for the summary line
    ui_port: int = 8080  # `foryou up`'s web page (foryou.app.ui); taken: a free port
    # `foryou up` only: where its services listen ({"home_mixer": "127.0.0.1:50050", …}; a service
    # not named gets a free port) and the /metrics port (0 = a free one)
    listen: dict[str, str] = field(default_factory=dict)
    metrics_port: int = 0


class DemoStopped(Exception):
    """Ctrl-C (or SIGTERM) stopped the demo; everything it started has been stopped."""


class InfraLost(RuntimeError):
    """`foryou up`'s Kafka or Redis went away while it was serving."""


def run_demo(
    settings: Settings, console: Console, config: DemoConfig | None = None, hold: bool = False
) -> dict[str, object]:
    """The demo; with `hold` (`foryou up`) the services keep running until Ctrl-C instead of the feeds.

    Ctrl-C (SIGINT) or SIGTERM at any stage stops it once: the running stage is cancelled (training
    checks the stop flag between steps), the services stop, then the embedded infrastructure (when
    no other running process uses it); then DemoStopped is raised. A second Ctrl-C only says so."""
    cfg = config or DemoConfig()
    t0 = time.monotonic()
    stop = threading.Event()
    main_task: list[asyncio.Task[dict[str, object]]] = []

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            console.print("[yellow]already stopping…[/yellow]")
            return
        stop.set()
        console.print("[yellow]stopping…[/yellow]")
        for task in main_task:  # the stage running in the event loop is cancelled at once
            task.get_loop().call_soon_threadsafe(task.cancel)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = _run_demo(settings, console, cfg, hold, stop, main_task)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    took = time.monotonic() - t0
    result["seconds"] = took
    if not hold:
        console.print(f"[bold green]demo finished in {took:.0f} s[/bold green]")
    return result


def _run_demo(
    settings: Settings,
    console: Console,
    cfg: DemoConfig,
    hold: bool,
    stop: threading.Event,
    main_task: list[asyncio.Task[dict[str, object]]],
) -> dict[str, object]:
    external = bool(settings.kafka_bootstrap and settings.redis_url)
    with console.status("starting embedded Kafka broker and Redis…"):
        state = infra.up(settings)  # not interrupted half-way: a Ctrl-C is acted on once it returns
    try:
        if not external:
            infra.add_user(settings)
        settings = settings.replace(kafka_bootstrap=state.kafka_bootstrap, redis_url=state.redis_url)
        console.print(
            f"[bold]infra[/bold] kafka {state.kafka_bootstrap}  redis {redact_url(state.redis_url)}"
        )
        if stop.is_set():
            raise DemoStopped("stopped while starting the infrastructure")
        if not external and not infra.live_users(settings):
            # the embedded Redis persists but the embedded broker does not: start both from the same
            # clean slate, so a second demo sees exactly what the first did (never under a running
            # `foryou up` that shares them)
            infra.clear_user_state(settings)

        async def main() -> dict[str, object]:
            main_task.append(asyncio.current_task())  # type: ignore[arg-type]
            if stop.is_set():
                raise asyncio.CancelledError
            return await _demo(settings, console, cfg, hold, stop)

        try:
            return asyncio.run(main())
        except asyncio.CancelledError:
            raise DemoStopped("stopped") from None
    finally:
        if not external:
            others = infra.remove_user(settings)
            if others:
                console.print(f"[bold]infra[/bold] left running: in use by pid {', '.join(map(str, others))}")
            else:
                with console.status("stopping Kafka and Redis…"):
                    infra.down(settings)
        if stop.is_set():
            console.print("[yellow]stopped; every service, Kafka and Redis it started are down[/yellow]")


WORLD_REUSE_MS = 6 * 3_600_000  # a saved world this fresh still has all its posts inside Thunder's 48 h


def _world(settings: Settings, console: Console, cfg: DemoConfig):  # type: ignore[no-untyped-def]
    """Generate the world, or reuse the one in the data directory when it has the same config and is
    recent (then the cached models trained on it apply too)."""
    from world import World, WorldConfig, generate_world

    now = int(time.time() * 1000)
    path = Path(settings.data_dir) / "world"
    wcfg = getattr(WorldConfig, cfg.preset)(seed=cfg.seed, now_ms=now)
    if (path / "world.json").exists():
        saved = json.loads((path / "world.json").read_text()).get("config", {})
        same = {k: v for k, v in saved.items() if k != "now_ms"} == {
            k: v for k, v in asdict(wcfg).items() if k != "now_ms"
        }
        if same and 0 <= now - saved.get("now_ms", 0) < WORLD_REUSE_MS:
            world = World.load(path)
            console.print(f"[bold]world[/bold] reusing {path} ({world.posts.height:,} posts)")
            return world, path
    with console.status(f"generating the {cfg.preset} world…"):
        world = generate_world(wcfg)
        path = world.save(path)
    console.print(
        f"[bold]world[/bold] {world.posts.height:,} posts, {world.engagements.height:,} engagement rows, "
        f"{world.follows.height:,} graph edges → {path}"
    )
    return world, path


def _cached_checkpoint(
    settings: Settings, console: Console, kind: str, world_dir: Path, config: dict[str, object], train
) -> Path:
    """Train `kind` into data_dir/models/<kind>-<key>, or reuse that directory: the key covers the
    world (world.json includes now_ms, which the ids depend on) and every training setting."""
    world_json = json.loads((world_dir / "world.json").read_text())
    key = hashlib.sha256(json.dumps([world_json, config], sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]
    out = Path(settings.data_dir) / "models" / f"{kind}-{key}"
    if (out / "model.safetensors").exists() and (out / "metrics.json").exists():
        console.print(f"[bold]{kind}[/bold] reusing cached checkpoint {out}")
        return out
    t0 = time.monotonic()
    train(out)
    console.print(f"[bold]{kind}[/bold] trained in {time.monotonic() - t0:.0f} s → {out}")
    return out


def _train_ranker(
    settings: Settings,
    console: Console,
    cfg: DemoConfig,
    world_dir: Path,
    stop: threading.Event | None = None,
) -> Path:
    from phoenix.ranker.config import RankerConfig, TrainConfig
    from phoenix.ranker.train import train_ranker

    # `small` reaches the default model's held-out AUC on the demo world in ~20 s (docs/ranker.md)
    model = RankerConfig.tiny() if cfg.tiny_model else RankerConfig.small()
    tcfg = TrainConfig(
        model=model, epochs=cfg.ranker_epochs, max_steps=cfg.ranker_max_steps, seed=cfg.seed, eval_every=0
    )
    return _cached_checkpoint(
        settings,
        console,
        "ranker",
        world_dir,
        tcfg.to_dict(),
        lambda out: train_ranker(world_dir, out, tcfg, stop=stop),
    )


def _train_retrieval(
    settings: Settings,
    console: Console,
    cfg: DemoConfig,
    world_dir: Path,
    stop: threading.Event | None = None,
) -> Path:
    from phoenix.retrieval.train import RetrievalTrainConfig, train_retrieval

    # `fast`: ~20 s on one core for the demo world (docs/retrieval.md); one thread leaves the other
    # core to the services that are already ingesting
    make = RetrievalTrainConfig.tiny if cfg.tiny_model else RetrievalTrainConfig.fast
    tcfg = make(
        max_steps=cfg.retrieval_max_steps,
        max_seconds=cfg.retrieval_max_seconds,
        seed=cfg.seed,
        num_threads=1,
        progress=True,
    )
    return _cached_checkpoint(
        settings,
        console,
        "retrieval",
        world_dir,
        tcfg.to_dict(),
        lambda out: train_retrieval(world_dir, out, tcfg, stop=stop),
    )


def _pick_users(world, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    """The most active users who follow someone (so both sources contribute)."""
    follows = world.follows.filter(pl.col("kind") == "follow").group_by("user_id").len()
    active = (
        world.engagements.group_by("user_id")
        .len()
        .rename({"len": "events"})
        .join(follows, on="user_id")
        .sort(["events", "user_id"], descending=[True, False])
    )
    return active["user_id"].head(n).to_list()


async def _demo(
    settings: Settings,
    console: Console,
    cfg: DemoConfig,
    hold: bool = False,
    stop: threading.Event | None = None,
) -> dict[str, object]:
    from foryou.app.stack import Stack, StackConfig
    from world.publish import publish_world

    world, world_dir = await asyncio.to_thread(_world, settings, console, cfg)
    # the ranker hydrates post semantic ids from the world's posts table (the SID lookup)
    config = StackConfig(sids_path=str(Path(world_dir) / "posts.parquet"))
    for name, address in cfg.listen.items():  # `foryou up --ports`
        setattr(config, f"{name}_address", address)
    stack = Stack(settings, config)
    feeds: dict[int, list[int]] = {}
    quality: dict = {}
    try:
        await stack.start_ingestion()
        stats = await asyncio.to_thread(publish_world, world, settings, None, True)
        console.print(
            "[bold]kafka[/bold] published "
            + ", ".join(f"{topic} {n:,}" for topic, n in sorted(stats.per_topic.items()))
            + f" events in {stats.seconds:.1f} s"
        )
        with console.status("waiting for Thunder and the ingesters to catch up…"):
            await stack.wait_caught_up()
        console.print(
            f"[bold]thunder[/bold] {stack.thunder.store.num_posts:,} posts in memory; Redis user state "
            "written"
        )
        stack.config.ranker_dir = str(
            await asyncio.to_thread(_train_ranker, settings, console, cfg, world_dir, stop)
        )
        if cfg.retrieval:
            stack.config.retrieval_dir = str(
                await asyncio.to_thread(_train_retrieval, settings, console, cfg, world_dir, stop)
            )
            with console.status("building the FAISS index from the posts topic…"):
                await stack.start_retrieval()
            index = stack.retrieval.handler.index
            console.print(
                f"[bold]retrieval[/bold] FAISS {index.kind} index of {len(index):,} posts (posts topic)"
            )
        await stack.start_serving()
        console.print("[bold]serving[/bold] " + "  ".join(f"{k}={v}" for k, v in stack.addresses.items()))
        if hold:
            await _hold(console, stack.addresses, settings, cfg, _pick_users(world, 1))
            return {"feeds": feeds, "quality": quality}
        async with channel(stack.addresses["home_mixer"], settings, aio=True) as ch:
            stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
            truth = GroundTruth(world_dir)
            for user in _pick_users(world, cfg.num_users):
                req = hm.GetDebugScoredPostsRequest(query=hm.GetScoredPostsRequest(viewer_id=user))
                resp = await stub.GetDebugScoredPosts(req, timeout=30)
                feeds[user] = _print_feed(console, user, resp)
                _print_truth(console, truth, user, resp)
            quality = await _quality_summary(console, stub, truth, world, cfg)
        _print_next_steps(console, stack.addresses)
    finally:
        with console.status("shutting down…"):
            await stack.stop()
    return {"feeds": feeds, "quality": quality}


async def _quality_summary(
    console: Console,
    stub: home_mixer_pb2_grpc.ScoredPostsServiceStub,
    truth: GroundTruth,
    world: World,
    cfg: DemoConfig,
) -> dict[str, dict[str, float]]:
    """Mean ground-truth figures over `cfg.quality_users` users who follow someone (a seeded sample)."""
    followers = world.follows.filter(pl.col("kind") == "follow")["user_id"].unique().sort()
    users = followers.sample(min(cfg.quality_users, len(followers)), seed=cfg.seed).to_list()
    rows: list[dict[str, dict]] = []
    with console.status(f"scoring {len(users)} feeds against the ground truth…"):
        for user in users:
            req = hm.GetDebugScoredPostsRequest(query=hm.GetScoredPostsRequest(viewer_id=user))
            resp = await stub.GetDebugScoredPosts(req, timeout=30)
            if any(c.outcome == "selected" for c in resp.candidates):
                rows.append(feed_truth(truth, user, resp))
    if not rows:
        return {}
    out = {
        k: {m: float(np.nanmean([r[k][m] for r in rows])) for m in ("favorite", "negative")} for k in rows[0]
    }
    out["users"] = {"count": float(len(rows))}
    parts = [
        f"{label} {out[k]['favorite']:.3f} / {out[k]['negative']:.4f}"
        for k, label in (
            ("served", "served"),
            ("in_network_only", "in-network only"),
            ("newest", "newest-first"),
            ("eligible", "average eligible"),
            ("best", "best possible"),
        )
    ]
    console.print(
        f"[bold]feed quality[/bold] over {len(rows)} users (ground truth, mean P(favorite) / P(negative)): "
        + " · ".join(parts),
        soft_wrap=True,
    )
    return out


def _print_feed(console: Console, user: int, resp: hm.GetDebugScoredPostsResponse) -> list[int]:
    selected = sorted((c for c in resp.candidates if c.outcome == "selected"), key=lambda c: c.position)
    table = Table(
        title=f"For You feed of user {user} ({len(selected)} posts, model {resp.model_version or '-'})"
    )
    for col in ("rank", "post", "author", "net", "top action probabilities", "weighted", "final"):
        table.add_column(
            col,
            justify="left" if col in ("net", "top action probabilities", "author") else "right",
            no_wrap=col != "top action probabilities",
        )
    for c in selected:
        # positive-action probabilities only (the map also carries continuous heads like dwell_time)
        top = sorted(
            ((k, v) for k, v in c.action_probs.items() if k in SHOWN_ACTIONS), key=lambda kv: -kv[1]
        )[:3]
        table.add_row(
            str(c.position + 1),
            str(c.post_id),
            c.fields.get("author_screen_name") or str(c.author_id),
            "in-network" if c.in_network else "out-of-network",
            ", ".join(f"{k} {v:.2f}" for k, v in top),
            f"{c.weighted_score:.4g}",
            f"{c.final_score:.4g}",
        )
    show_table(table, console)
    removed: dict[str, int] = {}
    for c in resp.candidates:
        if c.outcome == "filtered":
            removed[c.filtered_by] = removed.get(c.filtered_by, 0) + 1
    for stage in resp.stages:
        if stage.stage in ("filter", "post_selection_filter") and stage.component not in removed:
            removed[stage.component] = 0
    for name, n in removed.items():
        console.print(f"  {name}: removed {n}")
    if resp.degraded:
        console.print(f"  [yellow]degraded: {', '.join(resp.degraded)}[/yellow]")
    return [c.post_id for c in selected]


def _print_truth(
    console: Console, truth: GroundTruth, user: int, resp: hm.GetDebugScoredPostsResponse
) -> None:
    t = feed_truth(truth, user, resp)
    parts = [
        f"{label} {t[k]['favorite']:.3f} / {t[k]['negative']:.4f}"
        for k, label in (
            ("served", "this feed"),
            ("newest", "newest-first"),
            ("eligible", f"all {t['eligible']['posts']:,} eligible"),
            ("best", "best possible"),
        )
    ]
    console.print(
        "  ground truth, mean P(favorite) / P(negative feedback): " + " · ".join(parts), soft_wrap=True
    )


async def _hold(
    console: Console, addresses: dict[str, str], settings: Settings, cfg: DemoConfig, viewers: list[int]
) -> None:
    """`foryou up`: serve until cancelled (Ctrl-C), with the web page and /metrics, the addresses
    written to <data_dir>/addresses.json; raises InfraLost when Kafka or Redis stop answering."""
    from foryou.app.running import remove_addresses, write_addresses
    from foryou.core.metrics import start_metrics_server

    ui = _start_ui(console, addresses["home_mixer"], settings, cfg.ui_port)
    metrics_port = start_metrics_server(cfg.metrics_port)
    viewer = viewers[0] if viewers else "USER_ID"
    record = {
        **addresses,
        "ui": ui.url,
        "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
        "kafka_bootstrap": settings.kafka_bootstrap,
        "redis_url": redact_url(settings.redis_url),
    }
    path = write_addresses(settings.data_dir, record)
    console.print(f"[bold]web page[/bold] {ui.url}feed/{viewer}  (models: {ui.url}models)", soft_wrap=True)
    console.print(f"[bold]metrics[/bold] {record['metrics']}  [bold]addresses[/bold] {path}", soft_wrap=True)
    console.print(
        f"running; try `foryou feed {viewer} --explain` or `foryou call home_mixer GetScoredPosts "
        f"'{{\"viewer_id\": {viewer}}}'` (they read {path.name}). Ctrl-C stops.",
        soft_wrap=True,
    )
    try:
        await _watch_infra(settings)
    finally:
        remove_addresses(settings.data_dir)
        await asyncio.to_thread(ui.stop)


INFRA_CHECK_S = 2.0  # how often `foryou up` checks that Kafka and Redis still answer
INFRA_FAILURES = 2  # consecutive failed checks before it gives up


async def _watch_infra(settings: Settings) -> None:
    """Until cancelled; InfraLost after INFRA_FAILURES failed probes in a row: without its
    infrastructure `up` would serve stale, degraded feeds while looking healthy, so it stops."""
    failures = 0
    while True:
        await asyncio.sleep(INFRA_CHECK_S)
        problem = await asyncio.to_thread(infra.probe, settings, 1.0)
        failures = failures + 1 if problem else 0
        if problem and failures >= INFRA_FAILURES:
            raise InfraLost(f"{problem}: the infrastructure went away (was `foryou infra down --force` run?)")


def _start_ui(console: Console, home_mixer: str, settings: Settings, port: int) -> UiServer:
    """The web page (foryou.app.ui) on `port`, or on a free port when that one is taken."""
    from foryou.app.ui import UiConfig, UiServer

    config = UiConfig(home_mixer, Path(settings.data_dir) / "models", settings)
    try:
        return UiServer(config, port=port).start()
    except OSError as e:
        console.print(f"[yellow]{e}; using a free port[/yellow]")
        return UiServer(config, port=0).start()


def _print_next_steps(console: Console, addresses: dict[str, str]) -> None:
    console.print(
        "\n[bold]Keep it running[/bold]: `foryou up` (all services in the foreground until Ctrl-C; it\n"
        "writes their addresses to <data dir>/addresses.json, where these commands find them):\n"
        "  `foryou feed USER_ID --explain`\n"
        "  `foryou call home_mixer GetScoredPosts '{\"viewer_id\": 42}'`\n"
        "  (server reflection is on: `grpcurl -plaintext HOST:PORT list` works too)"
    )
