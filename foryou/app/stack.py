"""Every service in one process (`foryou serve all`, `foryou up`, the demo): the ingesters, Thunder,
the Phoenix ranking (and retrieval) servers and home_mixer, each on its own gRPC port, talking to
each other over gRPC exactly as separate processes would."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foryou.core.settings import Settings
from foryou.core.tls import server_credentials
from foryou.ingest.runner import AsyncIngestService
from thunder.config import ThunderConfig
from thunder.service import ThunderService

if TYPE_CHECKING:  # heavy (torch): imported where the services start
    from home_mixer.service import HomeMixerConfig
    from phoenix.ranker.handler import RankingHandlerConfig
    from phoenix.retrieval.service import RetrievalServiceConfig

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StackConfig:
    ranker_dir: str = ""
    retrieval_dir: str = ""
    sids_path: str = ""  # Parquet with post_id + sid: the ranker's semantic-id lookup ("" = none)
    thunder_address: str = "127.0.0.1:0"
    ranker_address: str = "127.0.0.1:0"
    retrieval_address: str = "127.0.0.1:0"
    home_mixer_address: str = "127.0.0.1:0"
    addresses: dict[str, str] = field(default_factory=dict)
    # each service's own config (limits, admission, bounds; None = its defaults); the addresses
    # above replace the grpc_address in them
    thunder: ThunderConfig | None = None
    ranker: RankingHandlerConfig | None = None
    ranker_max_concurrent_rpcs: int | None = None  # its gRPC server; None = serve_ranking's default
    retrieval: RetrievalServiceConfig | None = None
    home_mixer: HomeMixerConfig | None = None


class Stack:
    """start_ingestion() first (so Kafka can be replayed while models train), then start_serving()."""

    def __init__(self, settings: Settings, config: StackConfig | None = None) -> None:
        self.settings = settings
        self.config = config or StackConfig()
        self.ingest = AsyncIngestService(settings)
        thunder = self.config.thunder or ThunderConfig.default()
        self.thunder = ThunderService(
            settings, dataclasses.replace(thunder, grpc_address=self.config.thunder_address)
        )
        self.retrieval: Any = None
        self._ranker_server: Any = None
        self.ranking: Any = None  # the RankingHandler (what a registry follower reloads)
        self.home_mixer: Any = None

    @property
    def addresses(self) -> dict[str, str]:
        return self.config.addresses

    async def start_ingestion(self) -> None:
        await self.ingest.start()
        await self.thunder.start()
        self.addresses["thunder"] = self.thunder.address
        self.retrieval = await _start_retrieval(self.settings, self.config)
        if self.retrieval is not None:
            self.addresses["retrieval"] = self.retrieval.address

    async def wait_caught_up(self, timeout_s: float = 120.0) -> None:
        await self.thunder.wait_caught_up(timeout_s)
        ok = await asyncio.to_thread(self.ingest.service.wait_caught_up, timeout_s)
        if not ok:
            raise TimeoutError("ingesters did not catch up")
        if self.retrieval is not None:
            await self.retrieval.wait_caught_up(timeout_s)

    async def start_retrieval(self, timeout_s: float = 120.0) -> None:
        """Start retrieval after the fact (the demo trains its model after ingestion started) and
        wait until its index has replayed the posts topic."""
        if self.retrieval is None:
            self.retrieval = await _start_retrieval(self.settings, self.config)
        if self.retrieval is not None:
            self.addresses["retrieval"] = self.retrieval.address
            await self.retrieval.wait_caught_up(timeout_s)

    async def start_serving(self) -> None:
        self._ranker_server, self.ranking, self.addresses["ranker"] = await _start_ranker(
            self.settings, self.config
        )

        from home_mixer.clients import build_clients_from_addresses
        from home_mixer.service import HomeMixerConfig, HomeMixerService

        clients = build_clients_from_addresses(
            self.addresses["thunder"],
            self.addresses.get("retrieval", "127.0.0.1:1"),
            self.addresses["ranker"],
            self.settings,
        )
        config = dataclasses.replace(
            self.config.home_mixer or HomeMixerConfig(), grpc_address=self.config.home_mixer_address
        )
        self.home_mixer = HomeMixerService(self.settings, clients, config)
        await self.home_mixer.start()
        self.addresses["home_mixer"] = self.home_mixer.address
        from home_mixer.service import tune_gc

        tune_gc()  # the GC otherwise costs ~12 ms per feed request (docs/perf/feed.md)

    async def start(self) -> None:
        await self.start_ingestion()
        await self.start_serving()

    async def stop(self) -> None:
        for name, stop in (
            ("home_mixer", self.home_mixer.stop if self.home_mixer else None),
            ("ranker", (lambda: _stop_server(self._ranker_server)) if self._ranker_server else None),
            ("retrieval", self.retrieval.stop if self.retrieval else None),
            ("thunder", self.thunder.stop),
            ("ingest", self.ingest.stop),
        ):
            if stop is None:
                continue
            try:
                await stop()
            except Exception:
                log.exception("stopping %s failed", name)


class PhoenixServices:
    """`foryou serve phoenix`: the ranking server and, with a retrieval model, the retrieval server.
    `ranking` is the started server's RankingHandler (what a registry follower reloads)."""

    def __init__(
        self,
        settings: Settings,
        ranker_dir: str,
        ranker_address: str,
        retrieval_dir: str = "",
        retrieval_address: str = "127.0.0.1:0",
        sids_path: str = "",
        ranker: RankingHandlerConfig | None = None,
        retrieval: RetrievalServiceConfig | None = None,
        ranker_max_concurrent_rpcs: int | None = None,
    ) -> None:
        """`ranker` / `retrieval`: the services' configs (limits, admission; None = defaults)."""
        self.settings = settings
        self.config = StackConfig(
            ranker_dir=ranker_dir,
            ranker_address=ranker_address,
            retrieval_dir=retrieval_dir,
            retrieval_address=retrieval_address,
            sids_path=sids_path,
            ranker=ranker,
            retrieval=retrieval,
            ranker_max_concurrent_rpcs=ranker_max_concurrent_rpcs,
        )
        self.addresses: dict[str, str] = {}
        self._ranker_server: Any = None
        self.ranking: Any = None
        self.retrieval: Any = None

    async def start(self) -> None:
        self._ranker_server, self.ranking, self.addresses["ranker"] = await _start_ranker(
            self.settings, self.config
        )
        self.retrieval = await _start_retrieval(self.settings, self.config)
        if self.retrieval is not None:
            self.addresses["retrieval"] = self.retrieval.address

    async def stop(self) -> None:
        if self.retrieval is not None:
            await self.retrieval.stop()
        await _stop_server(self._ranker_server)


async def _start_ranker(settings: Settings, config: StackConfig) -> tuple[Any, Any, str]:
    """(gRPC server, RankingHandler, address) of the ranker in `config.ranker_dir`."""
    from phoenix.ranker.handler import RankingHandler
    from phoenix.ranker.servicer import serve_ranking

    sids = await _load_sids(config)
    handler = await asyncio.to_thread(RankingHandler.from_dir, config.ranker_dir, config.ranker, sids)
    bounds = (
        {"max_concurrent_rpcs": config.ranker_max_concurrent_rpcs}
        if config.ranker_max_concurrent_rpcs
        else {}
    )
    server, port = serve_ranking(
        handler,
        config.ranker_address,
        admin_token=settings.admin_token,
        **bounds,
        credentials=server_credentials(settings),
    )
    return server, handler, f"{config.ranker_address.rsplit(':', 1)[0]}:{port}"


async def _stop_server(server: Any) -> None:
    """A sync gRPC server: 2 s of grace for in-flight calls, waited for off the event loop."""
    await asyncio.to_thread(server.stop(2).wait)


_SIDS: dict[str, Any] = {}


async def _load_sids(config: StackConfig) -> Any:
    """The post id -> semantic id lookup of `config.sids_path`, loaded once per process and
    shared by the ranker and retrieval; None without a path."""
    if not config.sids_path:
        return None
    key = f"{config.sids_path}@{Path(config.sids_path).stat().st_mtime_ns}"
    if key not in _SIDS:
        from phoenix.ranker.sids import SidLookup

        sids = await asyncio.to_thread(SidLookup.from_parquet, config.sids_path)
        log.info("semantic ids loaded", extra={"posts": len(sids), "path": config.sids_path})
        _SIDS.clear()
        _SIDS[key] = sids
    return _SIDS[key]


async def _start_retrieval(settings: Settings, config: StackConfig) -> Any:
    """Phoenix retrieval with its live index, when a retrieval model is configured."""
    if not config.retrieval_dir or not Path(config.retrieval_dir).exists():
        return None
    from phoenix.retrieval.service import RetrievalService  # type: ignore[import-not-found]

    sids = await _load_sids(config)
    svc = RetrievalService(
        settings,
        config.retrieval_dir,
        grpc_address=config.retrieval_address,
        config=config.retrieval,
        sids=sids,
    )
    await svc.start()
    return svc
