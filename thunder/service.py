"""Thunder as a running service: the `posts` consumer thread, the periodic trim thread and the gRPC
server. Health stays NOT_SERVING until the consumer has caught up with the topic, and goes back to
NOT_SERVING while the consumer cannot ingest for `consumer_stall_s` (foryou.core.stall_watch):
Thunder keeps answering from the posts it has, each response flagged `stale` so home_mixer marks
the feed degraded ("thunder_stale")."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from foryou.core.grpc_server import GrpcServer
from foryou.core.serve import wait_caught_up
from foryou.core.settings import Settings
from foryou.core.stall_watch import StallWatch
from foryou.core.tls import server_credentials
from protos import thunder_pb2_grpc
from thunder import metrics
from thunder.config import ThunderConfig
from thunder.handler import InNetworkPostsHandler
from thunder.ingest import PostEventApplier, decode_post_events
from thunder.posts_consumer import PostsConsumer
from thunder.request import max_request_bytes
from thunder.servicer import SERVICE_NAME, InNetworkPostsServicer
from thunder.store import PostStore

log = logging.getLogger(__name__)


class ThunderService:
    def __init__(self, settings: Settings, config: ThunderConfig | None = None) -> None:
        self.settings = settings
        self.config = config or ThunderConfig.default()
        self.store = PostStore(self.config.store)
        self.handler = InNetworkPostsHandler(self.store, self.config)
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.server: GrpcServer | None = None
        self._serve_task: asyncio.Task[None] | None = None  # runs `watch`: flips health
        # the store is rebuilt by replaying the retained topic at every start (explicit assignment);
        # commits go to one stable group per replica (FORYOU_REPLICA_ID), not a new group per start
        self.consumer = PostsConsumer(
            settings,
            decode_post_events,
            PostEventApplier(self.store),
            retention_s=self.config.store.retention_s,
            group_id=settings.replica_group(self.config.group_id),
        )
        self.watch = StallWatch.of_posts_consumer(
            "thunder", self.consumer, self.caught_up.is_set, settings.consumer_health_interval_s, self.handler
        )

    @property
    def address(self) -> str:
        assert self.server is not None, "not started"
        return self.server.address

    def _ingest_loop(self) -> None:
        t0 = time.monotonic()
        next_lag_check = last_lag_check = 0.0
        while not self._stop.is_set():
            try:
                n = self.consumer.poll_once()
                now = time.monotonic()
                # lag costs a broker round trip per partition: during replay ask every 0.5 s, or
                # sooner (at most every 50 ms) when a poll came back short (maybe drained); once
                # serving, every 30 s for the per-partition lag gauge
                drained = not self.caught_up.is_set() and n < self.consumer.batch_size
                if now >= next_lag_check or (drained and now - last_lag_check >= 0.05):
                    caught_up = self.consumer.caught_up(self.config.catchup_max_lag)
                    last_lag_check = now
                    next_lag_check = now + (30.0 if self.caught_up.is_set() else 0.5)
                    if caught_up and not self.caught_up.is_set():
                        self._finish_catch_up(t0)
                        next_lag_check = now + 30.0
            except Exception:
                log.exception("thunder ingest batch failed; retrying")
                time.sleep(0.5)

    def _finish_catch_up(self, t0: float) -> None:
        """Fold everything replayed into the read snapshot before the first query is admitted,
        then let the server report SERVING (`caught_up`)."""
        self.store.rebuild_snapshot()
        metrics.update_store_gauges(self.store)
        took = time.monotonic() - t0
        metrics.INIT_SECONDS.set(took)
        self.caught_up.set()
        log.info("thunder caught up", extra={"seconds": round(took, 2), "posts": self.store.num_posts})

    def _maintenance_loop(self) -> None:
        """Fold recent inserts into the read snapshot (often), trim expired posts (every 2 min) and
        refresh the store gauges (every 5 s; they walk every author)."""
        last_trim = last_snap = last_gauges = time.monotonic()
        while not self._stop.wait(0.5):
            now = time.monotonic()
            if now - last_trim >= self.config.trim_interval_s:
                t0 = time.perf_counter()
                n = self.store.trim()
                metrics.TRIM_SECONDS.observe(time.perf_counter() - t0)
                log.info("thunder trim", extra={"recycled": n, "seconds": round(time.perf_counter() - t0, 3)})
                last_trim = last_snap = now
            elif self.store.delta_size > 50_000 or (self.store.delta_size and now - last_snap >= 2.0):
                self.store.rebuild_snapshot()
                last_snap = now
            if now - last_gauges >= 5.0:
                metrics.update_store_gauges(self.store)
                last_gauges = now

    async def start(self) -> None:
        for target in (self._ingest_loop, self._maintenance_loop):
            t = threading.Thread(target=target, name=f"thunder-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)
        self.server = GrpcServer(
            self.config.grpc_address,
            self.config.max_concurrent_rpcs,
            max_receive_bytes=self.config.max_request_bytes
            or max_request_bytes(self.config.max_input_list_size),
            credentials=server_credentials(self.settings),
        )
        self.server.add(
            thunder_pb2_grpc.add_InNetworkPostsServiceServicer_to_server,
            InNetworkPostsServicer(self.handler),
            SERVICE_NAME,
        )
        await self.server.start(serving=False)
        self._serve_task = self.watch.start(self.server, self._stop)

    async def wait_caught_up(self, timeout_s: float = 60.0) -> None:
        await wait_caught_up(self.caught_up, timeout_s, "thunder")

    async def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            await self.server.stop(grace_s=2.0)
        for t in self._threads:
            t.join(5)
        self.consumer.close()


async def run_thunder(
    settings: Settings, config: ThunderConfig | None = None, stop_event: asyncio.Event | None = None
) -> None:
    """Run Thunder until `stop_event` is set (or the task is cancelled), then stop gracefully."""
    svc = ThunderService(settings, config)
    await svc.start()
    try:
        await (stop_event or asyncio.Event()).wait()
    finally:
        await svc.stop()
