"""`foryou serve …`: run one service (or all of them) in the foreground until Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from foryou.app.cli import limits
from foryou.app.cli.addresses import (
    HOME_MIXER,
    INGEST,
    RANKER,
    RETRIEVAL,
    THUNDER,
    HomeMixerAddress,
    IngestAddress,
    RankerAddress,
    RetrievalAddress,
    ThunderAddress,
)
from foryou.app.cli.common import MetricsPort, ServeSids, console, ctx_settings, fail, group, resolve_infra
from foryou.core.events import RETENTION_S

if TYPE_CHECKING:  # heavy (torch, grpc, Kafka): imported inside the commands
    from phoenix.registry import Registry

app = group("Run services (gRPC + /metrics) until Ctrl-C.")

RetrievalModel = Annotated[str, typer.Option(help="Retrieval checkpoint directory (optional)")]
RankerOrRegistry = Annotated[str, typer.Option(help="Ranker checkpoint directory (or --registry)")]
RegistryRoot = Annotated[
    str,
    typer.Option(
        help="Models root: serve its promoted ranker (and promoted retrieval model, unless "
        "--retrieval-model) and follow promotions (instead of --ranker-model)"
    ),
]
RegistryPollS = Annotated[float, typer.Option(help="How often the promoted pointer is checked (seconds)")]
ServeDevice = Annotated[
    str,
    typer.Option(
        help="Where the ranker and retrieval models run: cpu | cuda | cuda:N | auto "
        "(the retrieval index too, with a GPU build of FAISS; docs/SCALING.md)"
    ),
]


@app.command("home-mixer")
def serve_home_mixer_cmd(
    ctx: typer.Context,
    thunder: ThunderAddress = THUNDER.default,
    retrieval: RetrievalAddress = RETRIEVAL.default,
    ranker: RankerAddress = RANKER.default,
    grpc_address: HomeMixerAddress = HOME_MIXER.default,
    workers: Annotated[int, typer.Option(help="Processes sharing the port")] = 1,
    metrics_port: MetricsPort = 0,
    max_ids: limits.FeedMaxIds = None,
    max_in_flight: limits.MaxInFlight = None,
    max_request_bytes: limits.MaxRequestBytes = None,
    max_concurrent_rpcs: limits.MaxConcurrentRpcs = None,
    params_file: Annotated[
        str,
        typer.Option(
            help="Params file (TOML: params, experiments, shadow scoring; docs/home_mixer.md), "
            "re-read when it changes; a bad file is refused and the loaded one kept"
        ),
    ] = "",
) -> None:
    """home_mixer: the For You ScoredPostsService (talks to Thunder, Phoenix and Redis)."""
    import asyncio

    from foryou.core.serve import prepare
    from home_mixer.service import HomeMixerConfig, serve_home_mixer

    settings = resolve_infra(prepare(ctx_settings(ctx).replace(metrics_port=metrics_port)))
    console.print(f"home_mixer on {grpc_address}")
    config = limits.home_mixer_config(
        HomeMixerConfig(grpc_address=grpc_address, workers=workers, params_file=params_file),
        max_ids,
        max_in_flight,
        max_request_bytes,
        max_concurrent_rpcs,
    )
    asyncio.run(serve_home_mixer(settings, thunder, retrieval, ranker, config))


@app.command("phoenix")
def serve_phoenix(
    ctx: typer.Context,
    ranker_model: RankerOrRegistry = "",
    ranker_address: RankerAddress = RANKER.default,
    retrieval_model: RetrievalModel = "",
    retrieval_address: RetrievalAddress = RETRIEVAL.default,
    sids: ServeSids = "",
    metrics_port: MetricsPort = 0,
    registry: RegistryRoot = "",
    registry_poll_s: RegistryPollS = 2.0,
    max_candidates: limits.MaxCandidates = None,
    max_history: limits.MaxHistory = None,
    max_exclusions: limits.MaxExclusions = None,
    max_top_k: limits.MaxTopK = None,
    max_concurrent_rpcs: limits.MaxConcurrentRpcs = None,
    device: ServeDevice = "cpu",
) -> None:
    """Phoenix: RankingService (and RetrievalService with its live FAISS index)."""
    import asyncio

    from foryou.app.stack import PhoenixServices
    from foryou.core.serve import prepare, run_until_signal

    if bool(ranker_model) == bool(registry):
        fail(ValueError("give exactly one of --ranker-model DIR and --registry DIR"))
    device_line = _serving_device(device)  # a CUDA device this machine lacks: one line, before anything
    promoted, retrieval_version, retrieval_model = _registry_models(registry, retrieval_model)
    # the ranking service is stateless: Kafka and Redis only feed the retrieval index
    settings = prepare(ctx_settings(ctx).replace(metrics_port=metrics_port))
    if retrieval_model:
        settings = resolve_infra(settings)
    # a registry version's folder, <models>/ranker/<version>: the handler then allows reloads from
    # <models>/ranker, where every later version lives
    ranker_dir = str(promoted[2]) if promoted is not None else ranker_model
    svc = PhoenixServices(
        settings,
        ranker_dir,
        ranker_address,
        retrieval_model,
        retrieval_address,
        sids,
        ranker=limits.ranker_config(max_candidates, max_history, device),
        retrieval=limits.retrieval_config(
            max_history, max_exclusions, max_top_k, max_concurrent_rpcs, device
        ),
        ranker_max_concurrent_rpcs=max_concurrent_rpcs,
    )
    services: list[Any] = [svc, *_followers(svc, promoted, retrieval_version, registry_poll_s)]

    async def started() -> None:
        console.print(device_line)
        console.print("phoenix: " + "  ".join(f"{k}={v}" for k, v in svc.addresses.items()))

    asyncio.run(run_until_signal(services, started))


def _serving_device(spec: str) -> str:
    """Resolve `--device` for the Phoenix handlers (they resolve it again when they load): a
    malformed device or a CUDA device this machine lacks fails in one line (exit 2) before any
    model loads or any port opens. Returns the device's description, printed once serving."""
    from phoenix.device import DeviceError, describe, resolve_device

    try:
        dev = resolve_device(spec)
    except DeviceError as e:
        fail(e)
    return f"phoenix device: {describe(dev)}"


class _RegistryFollower:
    """`serve phoenix|all --registry`: keeps the started ranker (or retrieval model) on the promoted
    version of its kind (each new version goes through its handler's `reload`). Listed after
    PhoenixServices (or the Stack), so it starts once the service serves and stops before it."""

    def __init__(self, phoenix: Any, registry: Registry, kind: str, version: str, poll_s: float) -> None:
        self.phoenix, self.registry, self.kind = phoenix, registry, kind
        self.version, self.poll_s = version, poll_s
        self.follower: Any = None

    async def start(self) -> None:
        import asyncio

        from phoenix.registry import follow_promoted

        handler = self.phoenix.ranking if self.kind == "ranker" else self.phoenix.retrieval.handler
        self.phoenix.addresses[f"{self.kind}_version"] = self.version
        # the first check runs now: a promotion made while the model loaded is picked up at once
        self.follower = await asyncio.to_thread(
            follow_promoted, self.registry, self.kind, handler, self.poll_s, self.version
        )

    async def stop(self) -> None:
        import asyncio

        if self.follower is not None:
            await asyncio.to_thread(self.follower.stop)


def _registry_models(
    registry: str, retrieval_model: str
) -> tuple[tuple[Registry, str, Path] | None, str | None, str]:
    """For `--registry`: (registry, promoted ranker version, its folder), the promoted retrieval
    version to follow (when one is promoted and no --retrieval-model is given, so every served
    record names the retrieval version that answered) and the retrieval model to load. Checked
    before anything starts: no promoted ranker is an operator error (one line), not a crash."""
    promoted = _promoted_ranker(registry) if registry else None
    retrieval_version = None
    if promoted is not None and not retrieval_model:
        retrieval_version = promoted[0].promoted("retrieval")
        if retrieval_version is not None:
            retrieval_model = str(promoted[0].path(retrieval_version))
    return promoted, retrieval_version, retrieval_model


def _followers(
    target: Any, promoted: tuple[Registry, str, Path] | None, retrieval_version: str | None, poll_s: float
) -> list[_RegistryFollower]:
    """Followers keeping `target`'s (PhoenixServices' or Stack's) models on the promoted versions."""
    if promoted is None:
        return []
    out = [_RegistryFollower(target, promoted[0], "ranker", promoted[1], poll_s)]
    if retrieval_version is not None:
        out.append(_RegistryFollower(target, promoted[0], "retrieval", retrieval_version, poll_s))
    return out


def _promoted_ranker(root: str) -> tuple[Registry, str, Path]:
    """(registry, promoted ranker version, its folder), or a one-line error (exit 2)."""
    from phoenix.registry import Registry, RegistryError

    reg = Registry(root)
    try:
        version = reg.promoted("ranker")
        if version is None:
            raise RegistryError(f"no promoted ranker in {root} (`foryou model promote ranker-NNNN` first)")
        return reg, version, reg.path(version)
    except RegistryError as e:
        fail(e)


@app.command("all")
def serve_all(
    ctx: typer.Context,
    ranker_model: RankerOrRegistry = "",
    registry: RegistryRoot = "",
    registry_poll_s: RegistryPollS = 2.0,
    retrieval_model: RetrievalModel = "",
    home_mixer_address: HomeMixerAddress = HOME_MIXER.default,
    sids: ServeSids = "",
    metrics_port: MetricsPort = 0,
    max_candidates: limits.MaxCandidates = None,
    max_history: limits.MaxHistory = None,
    max_exclusions: limits.MaxExclusions = None,
    max_ids: limits.FeedMaxIds = None,
    max_in_flight: limits.MaxInFlight = None,
    device: ServeDevice = "cpu",
) -> None:
    """Ingesters, Thunder, Phoenix and home_mixer in one process."""
    import asyncio

    from foryou.app.stack import Stack, StackConfig
    from foryou.core.serve import prepare, run_until_signal
    from home_mixer.service import HomeMixerConfig

    if bool(ranker_model) == bool(registry):
        fail(ValueError("give exactly one of --ranker-model DIR and --registry DIR"))
    device_line = _serving_device(device)
    promoted, retrieval_version, retrieval_model = _registry_models(registry, retrieval_model)
    settings = resolve_infra(prepare(ctx_settings(ctx).replace(metrics_port=metrics_port)))
    stack = Stack(
        settings,
        StackConfig(
            ranker_dir=str(promoted[2]) if promoted is not None else ranker_model,
            retrieval_dir=retrieval_model,
            home_mixer_address=home_mixer_address,
            sids_path=sids,
            ranker=limits.ranker_config(max_candidates, max_history, device),
            retrieval=limits.retrieval_config(max_history, max_exclusions, None, None, device),
            home_mixer=limits.home_mixer_config(HomeMixerConfig(), max_ids, max_in_flight, None),
        ),
    )

    async def started() -> None:
        console.print(device_line)
        console.print("serving: " + "  ".join(f"{k}={v}" for k, v in stack.addresses.items()))

    # followers after the stack: they start once it serves and stop before it
    asyncio.run(
        run_until_signal([stack, *_followers(stack, promoted, retrieval_version, registry_poll_s)], started)
    )


@app.command("ingest")
def serve_ingest(
    ctx: typer.Context, grpc_address: IngestAddress = INGEST.default, metrics_port: MetricsPort = 0
) -> None:
    """Kafka -> Redis user-state ingesters (social graph, action sequences, post and author data).
    gRPC health on --grpc-address: NOT_SERVING while an ingester is stalled or the state is rebuilt."""
    import asyncio

    from foryou.core.serve import prepare, run_until_signal
    from foryou.ingest.runner import AsyncIngestService

    settings = resolve_infra(prepare(ctx_settings(ctx).replace(metrics_port=metrics_port)))
    svc = AsyncIngestService(settings, health_address=grpc_address)

    async def started() -> None:
        console.print(f"ingest health on {svc.address}")

    asyncio.run(run_until_signal([svc], started))


@app.command("thunder")
def serve_thunder(
    ctx: typer.Context,
    grpc_address: ThunderAddress = THUNDER.default,
    metrics_port: MetricsPort = 0,
    retention_s: Annotated[int, typer.Option(envvar="FORYOU_THUNDER_RETENTION_S")] = RETENTION_S,
    max_concurrent_rpcs: Annotated[int, typer.Option()] = 64,
    max_ids: limits.ThunderMaxIds = None,
    max_request_bytes: limits.MaxRequestBytes = None,
) -> None:
    """Thunder: the in-network post store fed from the `posts` topic."""
    import asyncio

    from foryou.core.serve import prepare, run_until_signal
    from thunder.config import StoreConfig, ThunderConfig
    from thunder.service import ThunderService

    settings = resolve_infra(prepare(ctx_settings(ctx).replace(metrics_port=metrics_port)))
    cfg = limits.thunder_config(
        ThunderConfig(
            store=StoreConfig(retention_s=retention_s),
            grpc_address=grpc_address,
            max_concurrent_rpcs=max_concurrent_rpcs,
        ),
        max_ids,
        max_request_bytes,
    )
    svc = ThunderService(settings, cfg)

    async def started() -> None:
        console.print(f"thunder listening on {svc.address} (SERVING once caught up with the posts topic)")

    asyncio.run(run_until_signal([svc], started))
