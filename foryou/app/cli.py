"""`foryou` command line: infra, serving, world, training, evaluation, index, feeds and the demo."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from foryou.core.events import RETENTION_S
from foryou.core.settings import Settings

app = typer.Typer(
    help="foryou: an open For You feed ranking service.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    # every flag also reads FORYOU_<COMMAND PATH>_<FLAG>, e.g. FORYOU_TRAIN_RANKER_EPOCHS
    context_settings={"auto_envvar_prefix": "FORYOU"},
)
infra_app = typer.Typer(help="Embedded Kafka broker + Redis on free local ports.", no_args_is_help=True)
app.add_typer(infra_app, name="infra")
serve_app = typer.Typer(help="Run services (gRPC + /metrics) until Ctrl-C.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")
world_app = typer.Typer(help="Synthetic world: generate to Parquet, publish to Kafka.", no_args_is_help=True)
app.add_typer(world_app, name="world")
train_app = typer.Typer(help="Train models from an engagement log.", no_args_is_help=True)
app.add_typer(train_app, name="train")
eval_app = typer.Typer(help="Evaluate trained models on the held-out split.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
index_app = typer.Typer(help="Retrieval FAISS index snapshots.", no_args_is_help=True)
app.add_typer(index_app, name="index")


def _print_metrics(title: str, metrics: dict) -> None:
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


@train_app.command("ranker")
def train_ranker_cmd(
    logs: Annotated[str, typer.Option(help="Engagement log Parquet, or a world directory")],
    out: Annotated[str, typer.Option(help="Checkpoint directory (resumes if it holds one)")],
    tiny: Annotated[bool, typer.Option(help="Tiny model (tests, smoke runs)")] = False,
    small: Annotated[bool, typer.Option(help="Small model (width 64, 2 layers)")] = False,
    epochs: Annotated[float, typer.Option(help="Ranking stage (all heads)")] = 2.0,
    exposure_epochs: Annotated[
        float, typer.Option(help="Exposure stage first (in-batch negatives only; docs/ranker.md)")
    ] = 1.0,
    max_steps: Annotated[int, typer.Option(help="0 = from epochs")] = 0,
    sids: Annotated[
        str,
        typer.Option(help="Parquet with post_id + sid; default: the world directory's posts table"),
    ] = "",
    in_batch_negatives: Annotated[
        bool, typer.Option("--in-batch-negatives", help="Add in-batch negatives in the ranking stage")
    ] = False,
    threads: Annotated[int, typer.Option(help="torch threads, 0 = torch default")] = 0,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train the Phoenix ranker (multi-action, candidate-isolated transformer)."""
    from phoenix.ranker.config import RankerConfig, TrainConfig
    from phoenix.ranker.train import train_ranker

    if tiny and small:
        raise typer.BadParameter("--tiny and --small are exclusive")
    model = RankerConfig.tiny() if tiny else RankerConfig.small() if small else RankerConfig()
    cfg = TrainConfig(
        model=model,
        epochs=epochs,
        exposure_epochs=exposure_epochs,
        max_steps=max_steps,
        sids_path=sids,
        in_batch_negatives=in_batch_negatives,
        num_threads=threads,
        seed=seed,
    )
    try:
        metrics = train_ranker(logs, out, cfg)
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    console.print(f"checkpoint, metrics.json and training curves in {out}")
    _print_metrics("ranker", {k: v for k, v in metrics.items() if k != "history"})
    if metrics.get("sid_posts") == 0:
        console.print(
            "[yellow]warning:[/yellow] trained without post semantic ids (no --sids and no world "
            "posts table next to the log): new posts are known only by untrained id embeddings "
            "(docs/ranker.md, Semantic ids)"
        )


@eval_app.command("ranker")
def eval_ranker_cmd(
    logs: Annotated[str, typer.Option(help="Engagement log Parquet, or a world directory")],
    model: Annotated[str, typer.Option(help="Checkpoint directory")],
    markdown: Annotated[bool, typer.Option(help="Also print the per-action Markdown tables")] = False,
) -> None:
    """ROC-AUC, PR-AUC, RCE, calibration, NDCG vs oracle and baselines on the held-out split."""
    from phoenix.ranker.evaluate import evaluate_ranker, markdown_segments, markdown_table

    try:
        with console.status("scoring the held-out split (model, oracle, baselines)…"):
            ev = evaluate_ranker(logs, model)
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    _print_metrics("ranker evaluation", ev)
    if markdown:
        print(markdown_table(ev))
        print()
        print(markdown_segments(ev))
    console.print(f"eval.json written to {model}")


RETRIEVAL_PRESETS = ("default", "fast", "tiny")


@train_app.command("retrieval")
def train_retrieval_cmd(
    logs: Annotated[str, typer.Option(help="Engagement log Parquet, or a world directory")],
    out: Annotated[str, typer.Option(help="Checkpoint directory")],
    preset: Annotated[
        str, typer.Option(help="default | fast (~15 s on 1 core, demo world) | tiny")
    ] = "default",
    epochs: Annotated[float | None, typer.Option(help="Override the preset's epochs")] = None,
    max_steps: Annotated[int, typer.Option(help="0 = from epochs")] = 0,
    max_seconds: Annotated[float, typer.Option(help="Wall-clock cap on training, 0 = none")] = 0.0,
    threads: Annotated[int, typer.Option(help="torch threads, 0 = torch default")] = 0,
    sids: Annotated[
        str,
        typer.Option(help="Parquet with post_id + sid; default: the world directory's posts table"),
    ] = "",
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train the two-tower retrieval model (user tower = ranker trunk, candidate tower = hash MLP)."""
    from phoenix.retrieval.train import RetrievalTrainConfig, train_retrieval

    if preset not in RETRIEVAL_PRESETS:
        raise typer.BadParameter(f"preset must be one of {', '.join(RETRIEVAL_PRESETS)}")
    make = {
        "default": RetrievalTrainConfig,
        "fast": RetrievalTrainConfig.fast,
        "tiny": RetrievalTrainConfig.tiny,
    }
    overrides = dict(
        max_steps=max_steps, max_seconds=max_seconds, num_threads=threads, seed=seed, sids_path=sids
    )
    if epochs is not None:
        overrides["epochs"] = epochs
    metrics = train_retrieval(logs, out, make[preset](**overrides))
    console.print(f"checkpoint and metrics.json in {out}")
    _print_metrics("retrieval", {k: v for k, v in metrics.items() if k != "config"})


@eval_app.command("retrieval")
def eval_retrieval_cmd(
    logs: Annotated[str, typer.Option(help="Engagement log Parquet, or a world directory")],
    model: Annotated[str, typer.Option(help="Checkpoint directory")],
) -> None:
    """recall@100/@1000 of held-out positives vs popularity, random and (worlds) the oracle's top-k."""
    from phoenix.retrieval.evaluate import evaluate_retrieval
    from world.retrieval_oracle import retrieval_oracle

    with console.status("evaluating retrieval…"):
        metrics = evaluate_retrieval(logs, model, oracle=retrieval_oracle(logs))
    _print_metrics("retrieval evaluation", metrics)


@index_app.command("build")
def index_build_cmd(
    model: Annotated[str, typer.Option(help="Retrieval checkpoint directory")],
    posts: Annotated[str, typer.Option(help="World directory or posts Parquet file")],
    out: Annotated[str, typer.Option(help="Snapshot directory (replaced atomically)")],
    exact_max_size: Annotated[int, typer.Option(help="Above this many posts: --kind")] = 100_000,
    kind: Annotated[str, typer.Option(help="Large-index type: pq | ivf | hnsw")] = "pq",
    nprobe: Annotated[int, typer.Option(help="IVF lists searched per query")] = 48,
    hnsw_m: Annotated[int, typer.Option()] = 32,
    ef_construction: Annotated[int, typer.Option()] = 64,
    now_ms: Annotated[
        int, typer.Option(help="Drop posts older than retention at this time; 0 = keep all")
    ] = 0,
) -> None:
    """Embed every post with the candidate tower and write a FAISS index snapshot."""
    from phoenix.retrieval.bulk_builder import build_index_snapshot
    from phoenix.retrieval.index import IndexConfig

    if kind not in ("pq", "ivf", "hnsw"):
        raise typer.BadParameter("kind must be pq, ivf or hnsw")
    cfg = IndexConfig(
        exact_max_size=exact_max_size,
        large_kind=kind,
        ivf_nprobe=nprobe,
        hnsw_m=hnsw_m,
        ef_construction=ef_construction,
    )
    with console.status("embedding posts and building the index…"):
        try:
            stats = build_index_snapshot(model, posts, out, cfg, now_ms)
        except (FileNotFoundError, ValueError) as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
    console.print(f"wrote {stats['kind']} index of {stats['posts']:,} posts to {out}")
    _print_index_stats(stats)


@index_app.command("stats")
def index_stats_cmd(
    snapshot: Annotated[str, typer.Argument(help="Snapshot directory (index build, or the live service's)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Post count, index type, memory bytes, build seconds and model version of a snapshot."""
    from phoenix.retrieval.index import read_snapshot_meta

    try:
        meta = read_snapshot_meta(snapshot)
    except FileNotFoundError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(meta))
    else:
        _print_index_stats(meta)


def _print_index_stats(meta: dict) -> None:
    table = Table("field", "value", title="retrieval index")
    for k in ("posts", "kind", "dim", "memory_bytes", "build_seconds", "embed_seconds", "model_version"):
        if k in meta:
            v = meta[k]
            table.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    console.print(table)


@world_app.command("generate")
def world_generate(
    out: Annotated[str, typer.Option(help="Output directory")],
    preset: Annotated[str, typer.Option(help="tiny | demo")] = "demo",
    seed: Annotated[int, typer.Option()] = 0,
    now_ms: Annotated[int | None, typer.Option(help="World clock (default: now)")] = None,
) -> None:
    """Generate a deterministic synthetic world (posts, engagement log, graph, oracle) as Parquet."""
    import time

    from world import WorldConfig, generate_world

    if preset not in ("tiny", "demo"):
        raise typer.BadParameter("preset must be tiny or demo")
    cfg = getattr(WorldConfig, preset)(seed=seed, now_ms=now_ms or int(time.time() * 1000))
    with console.status(f"generating the {preset} world…"):
        world = generate_world(cfg)
        path = world.save(out)
    console.print(
        f"wrote {world.posts.height:,} posts, {world.engagements.height:,} engagement rows to {path}"
    )


@world_app.command("publish")
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

    world = World.load(world_dir).rebased(int(time.time() * 1000))
    stats = publish_world(world, _settings(ctx).resolved(), rate=rate, progress=True)
    console.print(f"published: {stats}")


@serve_app.command("home-mixer")
def serve_home_mixer_cmd(
    ctx: typer.Context,
    thunder: Annotated[str, typer.Option(envvar="FORYOU_THUNDER_ADDRESS")] = "127.0.0.1:50051",
    retrieval: Annotated[str, typer.Option(envvar="FORYOU_RETRIEVAL_ADDRESS")] = "127.0.0.1:50052",
    ranker: Annotated[str, typer.Option(envvar="FORYOU_RANKER_ADDRESS")] = "127.0.0.1:50053",
    grpc_address: Annotated[str, typer.Option(envvar="FORYOU_HOME_MIXER_ADDRESS")] = "127.0.0.1:50050",
    workers: Annotated[int, typer.Option(help="Processes sharing the port")] = 1,
    metrics_port: Annotated[int, typer.Option(envvar="FORYOU_METRICS_PORT")] = 0,
) -> None:
    """home_mixer: the For You ScoredPostsService (talks to Thunder, Phoenix and Redis)."""
    import asyncio

    from foryou.core.serve import prepare
    from home_mixer.service import HomeMixerConfig, serve_home_mixer

    settings = prepare(_settings(ctx).replace(metrics_port=metrics_port))
    console.print(f"home_mixer on {grpc_address}")
    asyncio.run(
        serve_home_mixer(
            settings, thunder, retrieval, ranker, HomeMixerConfig(grpc_address=grpc_address, workers=workers)
        )
    )


@serve_app.command("phoenix")
def serve_phoenix(
    ctx: typer.Context,
    ranker_model: Annotated[str, typer.Option(help="Ranker checkpoint directory")],
    ranker_address: Annotated[str, typer.Option(envvar="FORYOU_RANKER_ADDRESS")] = "127.0.0.1:50053",
    retrieval_model: Annotated[str, typer.Option(help="Retrieval checkpoint directory (optional)")] = "",
    retrieval_address: Annotated[str, typer.Option(envvar="FORYOU_RETRIEVAL_ADDRESS")] = "127.0.0.1:50052",
    sids: Annotated[
        str,
        typer.Option(envvar="FORYOU_SIDS_PATH", help="Parquet of post_id + sid (a world's posts.parquet)"),
    ] = "",
    metrics_port: Annotated[int, typer.Option(envvar="FORYOU_METRICS_PORT")] = 0,
) -> None:
    """Phoenix: RankingService (and RetrievalService with its live FAISS index)."""
    import asyncio

    from foryou.app.stack import PhoenixServices
    from foryou.core.serve import prepare, run_until_signal

    # the ranking service is stateless: Kafka and Redis only feed the retrieval index
    settings = prepare(_settings(ctx).replace(metrics_port=metrics_port), needs_infra=bool(retrieval_model))
    svc = PhoenixServices(settings, ranker_model, ranker_address, retrieval_model, retrieval_address, sids)

    async def started() -> None:
        console.print("phoenix: " + "  ".join(f"{k}={v}" for k, v in svc.addresses.items()))

    asyncio.run(run_until_signal([svc], started))


@serve_app.command("all")
def serve_all(
    ctx: typer.Context,
    ranker_model: Annotated[str, typer.Option(help="Ranker checkpoint directory")],
    retrieval_model: Annotated[str, typer.Option(help="Retrieval checkpoint directory (optional)")] = "",
    home_mixer_address: Annotated[str, typer.Option(envvar="FORYOU_HOME_MIXER_ADDRESS")] = "127.0.0.1:50050",
    sids: Annotated[
        str,
        typer.Option(envvar="FORYOU_SIDS_PATH", help="Parquet of post_id + sid (a world's posts.parquet)"),
    ] = "",
    metrics_port: Annotated[int, typer.Option(envvar="FORYOU_METRICS_PORT")] = 0,
) -> None:
    """Ingesters, Thunder, Phoenix and home_mixer in one process."""
    import asyncio

    from foryou.app.stack import Stack, StackConfig
    from foryou.core.serve import prepare, run_until_signal

    settings = prepare(_settings(ctx).replace(metrics_port=metrics_port))
    stack = Stack(
        settings,
        StackConfig(
            ranker_dir=ranker_model,
            retrieval_dir=retrieval_model,
            home_mixer_address=home_mixer_address,
            sids_path=sids,
        ),
    )

    async def started() -> None:
        console.print("serving: " + "  ".join(f"{k}={v}" for k, v in stack.addresses.items()))

    asyncio.run(run_until_signal([stack], started))


@serve_app.command("ingest")
def serve_ingest(
    ctx: typer.Context,
    metrics_port: Annotated[int, typer.Option(envvar="FORYOU_METRICS_PORT")] = 0,
) -> None:
    """Kafka -> Redis user-state ingesters (social graph, action sequences, post and author data)."""
    import asyncio

    from foryou.core.serve import prepare, run_until_signal
    from foryou.ingest.runner import AsyncIngestService

    settings = prepare(_settings(ctx).replace(metrics_port=metrics_port))
    asyncio.run(run_until_signal([AsyncIngestService(settings)]))


console = Console()


@app.callback()
def main(
    ctx: typer.Context,
    kafka_bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap (env FORYOU_KAFKA_BOOTSTRAP)")
    ] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL (env FORYOU_REDIS_URL)")] = None,
    data_dir: Annotated[str | None, typer.Option(help="State/data directory (env FORYOU_DATA_DIR)")] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level (env FORYOU_LOG_LEVEL)")] = None,
) -> None:
    ctx.obj = Settings.from_env(
        kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, data_dir=data_dir, log_level=log_level
    )


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj if isinstance(ctx.obj, Settings) else Settings.from_env()


@infra_app.command("up")
def infra_up(ctx: typer.Context) -> None:
    """Start the embedded broker and Redis (unless external ones are configured) and create topics."""
    from foryou.app import infra
    from foryou.core import local_infra

    settings = _settings(ctx)
    with console.status("starting Kafka broker and Redis…"):
        state = infra.up(settings)
    console.print(f"kafka bootstrap: [bold]{state.kafka_bootstrap}[/bold]")
    console.print(f"redis url:       [bold]{state.redis_url}[/bold]")
    console.print(f"state file:      {local_infra.state_path(settings.data_dir)}")


@infra_app.command("down")
def infra_down(ctx: typer.Context) -> None:
    """Stop exactly the processes `infra up` started."""
    from foryou.app import infra

    stopped = infra.down(_settings(ctx))
    console.print("stopped embedded broker and Redis" if stopped else "nothing recorded as running")


@infra_app.command("status")
def infra_status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Report Kafka and Redis health; exit code 1 when unhealthy."""
    from foryou.app import infra

    st = infra.status(_settings(ctx))
    if as_json:
        print(json.dumps(st))
    else:
        table = Table("component", "address", "status")
        table.add_row("kafka", st["kafka_bootstrap"] or "-", st["kafka"])
        table.add_row("redis", st["redis_url"] or "-", st["redis"])
        console.print(table)
        if st["topics"]:
            console.print("topics: " + ", ".join(t for t in st["topics"] if not t.startswith("__")))
        console.print("[green]healthy[/green]" if st["healthy"] else "[red]unhealthy[/red]")
    raise typer.Exit(0 if st["healthy"] else 1)


@serve_app.command("thunder")
def serve_thunder(
    ctx: typer.Context,
    grpc_address: Annotated[str, typer.Option(envvar="FORYOU_THUNDER_ADDRESS")] = "127.0.0.1:50051",
    metrics_port: Annotated[int, typer.Option(envvar="FORYOU_METRICS_PORT")] = 0,
    retention_s: Annotated[int, typer.Option(envvar="FORYOU_THUNDER_RETENTION_S")] = RETENTION_S,
    max_concurrent_rpcs: Annotated[int, typer.Option()] = 64,
) -> None:
    """Thunder: the in-network post store fed from the `posts` topic."""
    import asyncio

    from foryou.core.serve import prepare, run_until_signal
    from thunder.config import StoreConfig, ThunderConfig
    from thunder.service import ThunderService

    settings = prepare(_settings(ctx).replace(metrics_port=metrics_port))
    cfg = ThunderConfig(
        store=StoreConfig(retention_s=retention_s),
        grpc_address=grpc_address,
        max_concurrent_rpcs=max_concurrent_rpcs,
    )
    svc = ThunderService(settings, cfg)

    async def started() -> None:
        console.print(f"thunder listening on {svc.address} (SERVING once caught up with the posts topic)")

    asyncio.run(run_until_signal([svc], started))


@app.command()
def replay(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="engagements | served | posts | user-events")],
    out: Annotated[str, typer.Option(help="Output Parquet file")],
    since: Annotated[int, typer.Option(help="Keep messages with timestamp >= since (ms)")] = 0,
    until: Annotated[int | None, typer.Option(help="Keep messages with timestamp < until (ms)")] = None,
) -> None:
    """Replay a Kafka topic into Parquet (e.g. the engagement log that trains the models)."""
    from pathlib import Path

    from foryou.app.replay import replay_topic

    settings = _settings(ctx).resolved()
    with console.status(f"replaying {topic}…") as status:
        res = replay_topic(
            settings,
            topic,
            Path(out),
            since,
            until,
            progress=lambda n: status.update(f"replaying {topic}: {n:,} rows"),
        )
    console.print(f"wrote {res.rows:,} rows to {res.out} ({res.malformed} malformed skipped)")


@app.command()
def demo(
    ctx: typer.Context,
    preset: Annotated[str, typer.Option(help="World size: demo | tiny")] = "demo",
    tiny_model: Annotated[bool, typer.Option(help="Tiny ranker and retrieval models (smoke runs)")] = False,
    ranker_max_steps: Annotated[int, typer.Option(help="0 = from the epochs (both stages)")] = 0,
    retrieval_max_steps: Annotated[int, typer.Option(help="0 = from the epochs")] = 0,
    retrieval: Annotated[bool, typer.Option(help="Out-of-network retrieval (two-tower + FAISS)")] = True,
    quality_users: Annotated[
        int, typer.Option(help="Feeds scored against the world's ground truth for the summary (0 = none)")
    ] = 100,
) -> None:
    """The main job: embedded Kafka + Redis, synthetic world, ingestion, training, serving, three feeds."""
    from foryou.app.demo import DemoConfig, run_demo
    from foryou.core.logs import setup_logging

    settings = _settings(ctx)
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


@app.command()
def up(
    ctx: typer.Context,
    preset: Annotated[str, typer.Option(help="World size: demo | tiny")] = "demo",
    tiny_model: Annotated[bool, typer.Option(help="Tiny ranker and retrieval models")] = False,
    retrieval: Annotated[bool, typer.Option(help="Out-of-network retrieval (two-tower + FAISS)")] = True,
) -> None:
    """The demo's services kept running in the foreground until Ctrl-C (embedded infra, world, models)."""
    from foryou.app.demo import DemoConfig, run_demo
    from foryou.core.logs import setup_logging

    setup_logging("WARNING", json_lines=False)
    config = DemoConfig(preset=preset, tiny_model=tiny_model, retrieval=retrieval)
    run_demo(_settings(ctx), console, config, hold=True)


@app.command()
def feed(
    ctx: typer.Context,
    user_id: Annotated[int, typer.Argument(help="Viewer id")],
    address: Annotated[str, typer.Option(envvar="FORYOU_HOME_MIXER_ADDRESS")] = "127.0.0.1:50050",
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


if __name__ == "__main__":
    app()
