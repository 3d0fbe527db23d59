"""`foryou serve …`: run one service (or all of them) in the foreground until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

from foryou.app.cli.addresses import (
    HOME_MIXER,
    RANKER,
    RETRIEVAL,
    THUNDER,
    HomeMixerAddress,
    RankerAddress,
    RetrievalAddress,
    ThunderAddress,
)
from foryou.app.cli.common import MetricsPort, ServeSids, console, ctx_settings, group
from foryou.core.events import RETENTION_S

app = group("Run services (gRPC + /metrics) until Ctrl-C.")

RankerModel = Annotated[str, typer.Option(help="Ranker checkpoint directory")]
RetrievalModel = Annotated[str, typer.Option(help="Retrieval checkpoint directory (optional)")]


@app.command("home-mixer")
def serve_home_mixer_cmd(
    ctx: typer.Context,
    thunder: ThunderAddress = THUNDER.default,
    retrieval: RetrievalAddress = RETRIEVAL.default,
    ranker: RankerAddress = RANKER.default,
    grpc_address: HomeMixerAddress = HOME_MIXER.default,
    workers: Annotated[int, typer.Option(help="Processes sharing the port")] = 1,
    metrics_port: MetricsPort = 0,
) -> None:
    """home_mixer: the For You ScoredPostsService (talks to Thunder, Phoenix and Redis)."""
    import asyncio

    from foryou.core.serve import prepare
    from home_mixer.service import HomeMixerConfig, serve_home_mixer

    settings = prepare(ctx_settings(ctx).replace(metrics_port=metrics_port))
    console.print(f"home_mixer on {grpc_address}")
    asyncio.run(
        serve_home_mixer(
            settings, thunder, retrieval, ranker, HomeMixerConfig(grpc_address=grpc_address, workers=workers)
        )
    )


@app.command("phoenix")
def serve_phoenix(
    ctx: typer.Context,
    ranker_model: RankerModel,
    ranker_address: RankerAddress = RANKER.default,
    retrieval_model: RetrievalModel = "",
    retrieval_address: RetrievalAddress = RETRIEVAL.default,
    sids: ServeSids = "",
    metrics_port: MetricsPort = 0,
) -> None:
    """Phoenix: RankingService (and RetrievalService with its live FAISS index)."""
    import asyncio

    from foryou.app.stack import PhoenixServices
    from foryou.core.serve import prepare, run_until_signal

    # the ranking service is stateless: Kafka and Redis only feed the retrieval index
    settings = prepare(
        ctx_settings(ctx).replace(metrics_port=metrics_port), needs_infra=bool(retrieval_model)
    )
    svc = PhoenixServices(settings, ranker_model, ranker_address, retrieval_model, retrieval_address, sids)

    async def started() -> None:
        console.print("phoenix: " + "  ".join(f"{k}={v}" for k, v in svc.addresses.items()))

    asyncio.run(run_until_signal([svc], started))


@app.command("all")
def serve_all(
    ctx: typer.Context,
    ranker_model: RankerModel,
    retrieval_model: RetrievalModel = "",
    home_mixer_address: HomeMixerAddress = HOME_MIXER.default,
    sids: ServeSids = "",
    metrics_port: MetricsPort = 0,
) -> None:
    """Ingesters, Thunder, Phoenix and home_mixer in one process."""
    import asyncio

    from foryou.app.stack import Stack, StackConfig
    from foryou.core.serve import prepare, run_until_signal

    settings = prepare(ctx_settings(ctx).replace(metrics_port=metrics_port))
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


@app.command("ingest")
def serve_ingest(ctx: typer.Context, metrics_port: MetricsPort = 0) -> None:
    """Kafka -> Redis user-state ingesters (social graph, action sequences, post and author data)."""
    import asyncio

    from foryou.core.serve import prepare, run_until_signal
    from foryou.ingest.runner import AsyncIngestService

    settings = prepare(ctx_settings(ctx).replace(metrics_port=metrics_port))
    asyncio.run(run_until_signal([AsyncIngestService(settings)]))


@app.command("thunder")
def serve_thunder(
    ctx: typer.Context,
    grpc_address: ThunderAddress = THUNDER.default,
    metrics_port: MetricsPort = 0,
    retention_s: Annotated[int, typer.Option(envvar="FORYOU_THUNDER_RETENTION_S")] = RETENTION_S,
    max_concurrent_rpcs: Annotated[int, typer.Option()] = 64,
) -> None:
    """Thunder: the in-network post store fed from the `posts` topic."""
    import asyncio

    from foryou.core.serve import prepare, run_until_signal
    from thunder.config import StoreConfig, ThunderConfig
    from thunder.service import ThunderService

    settings = prepare(ctx_settings(ctx).replace(metrics_port=metrics_port))
    cfg = ThunderConfig(
        store=StoreConfig(retention_s=retention_s),
        grpc_address=grpc_address,
        max_concurrent_rpcs=max_concurrent_rpcs,
    )
    svc = ThunderService(settings, cfg)

    async def started() -> None:
        console.print(f"thunder listening on {svc.address} (SERVING once caught up with the posts topic)")

    asyncio.run(run_until_signal([svc], started))
