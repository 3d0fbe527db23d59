"""home_mixer as a running service: the pipeline, the `served` Kafka producer, the engagement log
(its own producer on `engagements`) and the gRPC server (health, reflection, bounded concurrency)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from candidate_pipeline import PipelineConfig
from foryou.core.admission import AdmissionConfig
from foryou.core.grpc_server import GrpcServer
from foryou.core.net import free_port
from foryou.core.settings import Settings
from foryou.core.tls import server_credentials
from home_mixer.clients import HomeMixerClients
from home_mixer.engagement_log_handler import EngagementLimits, EngagementLogHandler
from home_mixer.handler import ScoredPostsHandler, feed_admission
from home_mixer.params import DEFAULT_PARAMS, Params, RequestLimits
from home_mixer.params_watcher import ParamsFileWatcher
from home_mixer.pipeline import DEFAULT_CONFIG, ScoredPostsPipeline
from home_mixer.servicer import SERVICE_NAME, ScoredPostsServicer
from protos import events_pb2, home_mixer_pb2, home_mixer_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(slots=True)
class HomeMixerConfig:
    grpc_address: str = "127.0.0.1:0"
    max_concurrent_rpcs: int = 32  # beyond this grpc answers RESOURCE_EXHAUSTED
    # processes sharing the port (SO_REUSEPORT; the kernel spreads connections). The pipeline is
    # CPU-bound Python, so one process serves one request at a time; >1 uses more cores.
    workers: int = 1
    publish_served: bool = True  # ServedEvent per served post to the `served` topic
    # an undeliverable ServedEvent is dropped (counted; `kafka` in degraded) after this long
    served_delivery_timeout_ms: int = 30_000
    # LogEngagements: clients' engagements to the `engagements` topic, answered once Kafka acked
    # them; an unacknowledged batch is UNAVAILABLE after this long (the producer's message timeout)
    accept_engagements: bool = True
    engagement_delivery_timeout_ms: int = 5_000
    engagement_limits: EngagementLimits = field(default_factory=EngagementLimits)
    # what a feed request may ask for (ids per request, codes); over -> INVALID_ARGUMENT
    limits: RequestLimits = field(default_factory=RequestLimits)
    # request bodies over this are refused by gRPC before they are read; 0 = the worst-case size
    # of a valid request (`max_request_bytes`)
    max_request_bytes: int = 0
    # deadline-aware admission of feed requests (foryou/core/admission.py): `max_in_flight` run
    # at once on the event loop (they await Thunder, Phoenix and Redis), the rest wait their turn;
    # what cannot finish before its deadline is refused at once
    admission: AdmissionConfig = field(default_factory=feed_admission)
    pipeline: PipelineConfig = field(default_factory=lambda: dataclasses.replace(DEFAULT_CONFIG))
    params: Params = DEFAULT_PARAMS
    # a params file (TOML: params, experiments, shadow scoring; home_mixer/experiments.py) that
    # replaces `params`; re-read when it changes, checked every `params_poll_s` ("" = none)
    params_file: str = ""
    params_poll_s: float = 2.0


class HomeMixerService:
    def __init__(
        self,
        settings: Settings,
        clients: HomeMixerClients,
        config: HomeMixerConfig | None = None,
        producer: Any = None,
        engagement_producer: Any = None,
    ) -> None:
        self.settings, self.clients = settings, clients
        self.config = config or HomeMixerConfig()
        if producer is None and self.config.publish_served and settings.kafka_bootstrap:
            from foryou.core.kafka import make_producer

            producer = make_producer(
                settings, **{"message.timeout.ms": self.config.served_delivery_timeout_ms}
            )
        self.producer = producer
        self.pipeline = ScoredPostsPipeline(
            clients,
            producer=producer,
            served_topic=settings.topic(settings.served_topic),
            config=self.config.pipeline,
        )
        self.handler = ScoredPostsHandler(
            self.pipeline, clients, self.config.params, self.config.limits, self.config.admission
        )
        self.engagements = self._engagement_log(engagement_producer)
        self.server: GrpcServer | None = None
        self.params_watcher: ParamsFileWatcher | None = None
        if self.config.params_file:  # a bad file at start-up is an error (ParamsFileError)
            self.params_watcher = ParamsFileWatcher(
                self.config.params_file, self.handler.set_serving, self.config.params_poll_s
            )
            self.params_watcher.load_initial()

    def _engagement_log(self, producer: Any) -> EngagementLogHandler | None:
        """Its own producer: acks of client engagements must not wait behind the served log's
        backlog, and its message timeout is the RPC's delivery deadline (not the served log's 30 s)."""
        cfg, settings = self.config, self.settings
        if producer is None and cfg.accept_engagements and settings.kafka_bootstrap:
            from foryou.core.kafka import make_producer

            producer = make_producer(
                settings, **{"message.timeout.ms": cfg.engagement_delivery_timeout_ms, "linger.ms": 1}
            )
        if producer is None:
            return None  # LogEngagements answers UNIMPLEMENTED
        return EngagementLogHandler(
            producer,
            settings.topic(settings.engagements_topic),
            delivery_timeout_s=cfg.engagement_delivery_timeout_ms / 1000,
            limits=cfg.engagement_limits,
        )

    @property
    def address(self) -> str:
        assert self.server is not None, "not started"
        return self.server.address

    async def start(self) -> None:
        self.server = GrpcServer(
            self.config.grpc_address,
            self.config.max_concurrent_rpcs,
            max_receive_bytes=self.config.max_request_bytes
            or max_request_bytes(self.config.limits, self.config.engagement_limits),
            credentials=server_credentials(self.settings),
        )
        self.server.add(
            home_mixer_pb2_grpc.add_ScoredPostsServiceServicer_to_server,
            ScoredPostsServicer(self.handler, self.engagements),
            SERVICE_NAME,
        )
        await self.server.start(serving=True)
        if self.params_watcher is not None:
            self.params_watcher.start()
        log.info("home_mixer serving on %s", self.server.address)

    async def stop(self) -> None:
        if self.params_watcher is not None:
            await self.params_watcher.stop()
        if self.server is not None:
            await self.server.stop(grace_s=2.0)
        await self.pipeline.drain_side_effects(timeout_s=2.0)
        if self.engagements is not None:
            await self.engagements.close()
        if self.producer is not None:
            await asyncio.to_thread(self.producer.flush, 5.0)
        await self.clients.close()


HEADROOM_BYTES = 64 << 10  # fields a newer client may add, debug param overrides, framing


def max_request_bytes(limits: RequestLimits, engagements: EngagementLimits) -> int:
    """Worst-case encoded size of the largest valid request of any method (every id a 10-byte
    varint, codes of 4-byte characters) plus headroom: the server's receive limit, so a larger
    body is refused by gRPC (RESOURCE_EXHAUSTED) before it is read into memory."""
    widest = home_mixer_pb2.GetScoredPostsRequest(
        viewer_id=-1,
        in_network_only=True,
        is_bottom_request=True,
        client_app_id=-1,
        country_code="\U0001f600" * limits.max_code_len,
        language_code="\U0001f600" * limits.max_code_len,
    )
    ids = 2 * (1 + 5) + 10 * limits.max_ids_per_request  # seen_ids + served_ids, packed
    feed = 1 + 5 + widest.ByteSize() + ids  # wrapped in GetDebugScoredPostsRequest
    widest_enum: Any = -1  # a 10-byte varint, as the stubs type enums by name
    event = events_pb2.EngagementEvent(
        user_id=-1,
        post_id=-1,
        author_id=-1,
        action=widest_enum,
        timestamp_ms=-1,
        product_surface=widest_enum,
        dwell_ms=-1,
    )
    batch = engagements.max_batch * (1 + 1 + event.ByteSize())
    return max(feed, batch) + HEADROOM_BYTES


def tune_gc() -> None:
    """For a serving process, after start-up: move the start-up objects out of the collector's
    generations (gc.freeze) and collect young objects less often. A request allocates tens of
    thousands of short-lived objects (candidates, protos) that reference counting frees; with the
    default threshold (700) the collector runs many times per request and its full passes over a
    large heap cost tens of ms (measured in bench/feed_bench.py)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


async def serve_home_mixer(
    settings: Settings,
    thunder_address: str,
    retrieval_address: str,
    ranker_address: str,
    config: HomeMixerConfig | None = None,
) -> None:
    """Body of `foryou serve home-mixer`: gRPC clients to the three services, Redis from settings,
    served until SIGINT/SIGTERM. With `config.workers > 1`, that many processes share the port."""
    from foryou.core.serve import run_until_signal
    from home_mixer.clients import build_clients_from_addresses

    config = config or HomeMixerConfig()
    children: list[Any] = []
    if config.workers > 1:
        config = with_fixed_port(config)
        children = start_workers(
            settings, thunder_address, retrieval_address, ranker_address, config, config.workers - 1
        )
    clients = build_clients_from_addresses(thunder_address, retrieval_address, ranker_address, settings)

    async def started() -> None:
        tune_gc()

    try:
        await run_until_signal([HomeMixerService(settings, clients, config)], on_started=started)
    finally:
        stop_workers(children)


def with_fixed_port(config: HomeMixerConfig) -> HomeMixerConfig:
    """Workers must bind the same port: replace port 0 by a free one."""
    host, port = config.grpc_address.rsplit(":", 1)
    if port == "0":
        return dataclasses.replace(config, grpc_address=f"{host}:{free_port()}")
    return config


def _worker_main(
    settings: Settings, thunder: str, retrieval: str, ranker: str, config: HomeMixerConfig
) -> None:
    logging.basicConfig(level=settings.log_level)
    asyncio.run(
        serve_home_mixer(settings, thunder, retrieval, ranker, dataclasses.replace(config, workers=1))
    )


def start_workers(
    settings: Settings, thunder: str, retrieval: str, ranker: str, config: HomeMixerConfig, n: int
) -> list[Any]:
    """Start `n` home_mixer worker processes serving `config.grpc_address` (a fixed port)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(n):
        p = ctx.Process(
            target=_worker_main,
            args=(settings, thunder, retrieval, ranker, config),
            name=f"home-mixer-worker-{i + 1}",
            daemon=True,
        )
        p.start()
        procs.append(p)
    return procs


def stop_workers(procs: list[Any], timeout_s: float = 5.0) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: graceful stop through run_until_signal
    for p in procs:
        p.join(timeout_s)
        if p.is_alive():
            p.kill()
