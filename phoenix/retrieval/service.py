"""Retrieval as a running service: a live updater consuming `posts` (full replay with a fresh
group on start, like Thunder: creates embedded in batches and added, deletes removed, periodic
retention eviction) and the gRPC server. Health stays NOT_SERVING until the updater caught up, and
goes back to NOT_SERVING while the updater cannot ingest for `consumer_stall_s`
(foryou.core.stall_watch): retrieval keeps answering from its index, each response flagged `stale`
so home_mixer marks the feed degraded ("retrieval_stale").

Snapshots: the index is written to `snapshot_dir` every `snapshot_interval_s` and at stop. On
start a snapshot embedded by the same model version is loaded, then the topic is replayed as
usual: adds of posts already indexed are no-ops (no embedding), deletes are applied, and once
caught up every indexed post the replay did not create is dropped, so the topic stays the source
of truth (a recreated topic or a post deleted while the service was down cannot survive)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prometheus_client import Gauge
from redis.backoff import NoBackoff
from redis.retry import Retry

from foryou.core import redis_client
from foryou.core.events import decode_post_event
from foryou.core.grpc_server import GrpcServer
from foryou.core.kafka import BatchConsumer, Decoded
from foryou.core.serve import wait_caught_up
from foryou.core.settings import Settings
from foryou.core.snowflake import timestamps_ms
from foryou.core.stall_watch import StallWatch
from foryou.core.tls import server_credentials
from phoenix.ranker.sids import SidLookup
from phoenix.retrieval.handler import RetrievalHandler, RetrievalHandlerConfig
from phoenix.retrieval.servicer import SERVICE_NAME, RetrievalServicer, add_retrieval_service
from protos import events_pb2

log = logging.getLogger(__name__)
INDEX_POSTS = Gauge("phoenix_retrieval_index_posts", "Live posts in the retrieval index")
INDEX_BYTES = Gauge("phoenix_retrieval_index_memory_bytes", "Memory held by the retrieval index")
SNAPSHOT_SECONDS = Gauge("phoenix_retrieval_snapshot_seconds", "Duration of the last index snapshot write")


@dataclass(slots=True)
class RetrievalServiceConfig:
    handler: RetrievalHandlerConfig = field(default_factory=RetrievalHandlerConfig)
    max_concurrent_rpcs: int = 64
    evict_interval_s: float = 60.0
    catchup_max_lag: int = 0
    group_id: str = "phoenix-retrieval"
    redis_timeout_s: float = 0.1  # history read; on failure the user is retrieved without history
    snapshots: bool = True
    snapshot_dir: str = ""  # "" -> <settings.data_dir>/retrieval-index/<posts topic>
    snapshot_interval_s: float = 300.0  # 0 = only at stop


class PostsIndexUpdater:
    """`apply` for the posts consumer: creates within retention -> add (embedded as one batch),
    deletes -> remove. A delete seen before its create (replay) is remembered so the create is
    skipped."""

    def __init__(self, handler: RetrievalHandler) -> None:
        self.handler = handler
        self._deleted: set[int] = set()
        self._replayed: list[np.ndarray] | None = []  # created post ids until the replay is done
        self.applied = 0  # events applied (a snapshot is written only when something changed)
        self.embedded = 0  # posts embedded and added (replayed posts already indexed are not)

    def prune(self, now_ms: int) -> None:
        """Forgets deletes of posts past retention (their creates would be skipped anyway)."""
        cutoff = now_ms - self.handler.config.index.retention_ms
        ids = np.fromiter(self._deleted, dtype=np.int64, count=len(self._deleted))
        self._deleted = set(ids[timestamps_ms(ids) >= cutoff].tolist())

    def end_replay(self) -> np.ndarray:
        """Post ids every create seen so far carried; stops recording them."""
        ids = np.concatenate(self._replayed) if self._replayed else np.zeros(0, np.int64)
        self._replayed = None
        return ids

    def __call__(self, batch: list[Decoded[events_pb2.PostEvent]]) -> None:
        posts: dict[int, int] = {}
        deletes: list[int] = []
        for d in batch:
            ev = d.value
            if ev.WhichOneof("event") == "create":
                posts[ev.create.post_id] = ev.create.author_id
            else:
                pid = ev.delete.post_id
                deletes.append(pid)
                posts.pop(pid, None)
        self.applied += len(batch)
        self._deleted.update(deletes)
        if self._replayed is not None:
            self._replayed.append(np.fromiter(posts, dtype=np.int64, count=len(posts)))
        if deletes:
            self.handler.remove_posts(deletes)
        ids = np.array([p for p in posts if p not in self._deleted], dtype=np.int64)
        if len(ids):
            retention = self.handler.config.index.retention_ms
            ids = ids[timestamps_ms(ids) >= int(time.time() * 1000) - retention]
            self.embedded += self.handler.add_posts(
                ids, np.array([posts[p] for p in ids.tolist()], dtype=np.int64)
            )


class RetrievalService:
    def __init__(
        self,
        settings: Settings,
        model_dir: str,
        grpc_address: str = "127.0.0.1:0",
        config: RetrievalServiceConfig | None = None,
        sids: SidLookup | None = None,
    ) -> None:
        """`sids`: the post id -> semantic id lookup the model was trained with (None = ids only)."""
        self.settings = settings
        self.config = config or RetrievalServiceConfig()
        self.grpc_address = grpc_address
        # a Redis outage must cost a request milliseconds, not redis-py's default retry backoff
        self._redis = (
            redis_client.connect(  # one server, redis+cluster:// or redis+sentinel://
                settings.redis_url,
                socket_timeout=self.config.redis_timeout_s,
                socket_connect_timeout=self.config.redis_timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
            if settings.redis_url
            else None
        )
        self.handler = RetrievalHandler.from_dir(
            model_dir,
            redis_client=self._redis,
            redis_prefix=settings.redis_prefix,
            config=self.config.handler,
            sids=sids,
        )
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.server: GrpcServer | None = None
        self._serve_task: asyncio.Task[None] | None = None  # runs `watch`: flips health
        self.snapshot_dir = Path(
            self.config.snapshot_dir
            or Path(settings.data_dir) / "retrieval-index" / settings.topic(settings.posts_topic)
        )
        self.snapshot_loaded = False
        self.updater = PostsIndexUpdater(self.handler)
        self._snapshot_applied = -1  # updater.applied at the last snapshot
        self.consumer: BatchConsumer[events_pb2.PostEvent] = BatchConsumer(
            settings,
            "phoenix-retrieval-posts",
            [settings.topic(settings.posts_topic)],
            decode_post_event,
            self.updater,
            group_id=settings.replica_group(self.config.group_id),  # stable per replica
            replay_from_beginning=True,
        )
        self.watch = StallWatch.of_posts_consumer(
            "retrieval",
            self.consumer,
            self.caught_up.is_set,
            settings.consumer_health_interval_s,
            self.handler,
        )

    @property
    def address(self) -> str:
        assert self.server is not None, "not started"
        return self.server.address

    def _ingest_loop(self) -> None:
        t0 = last_evict = last_snapshot = time.monotonic()
        while not self._stop.is_set():
            try:
                self.consumer.poll_once()
                if not self.caught_up.is_set() and self.consumer.caught_up(self.config.catchup_max_lag):
                    # posts of a loaded snapshot that the replay did not create are gone
                    replayed = self.updater.end_replay()
                    stale = self.handler.retain_only(replayed) if self.snapshot_loaded else 0
                    self.caught_up.set()
                    log.info(
                        "retrieval index caught up",
                        extra={
                            "seconds": round(time.monotonic() - t0, 2),
                            "posts": len(self.handler.index),
                            "from_snapshot": self.snapshot_loaded,
                            "stale_removed": stale,
                        },
                    )
                if time.monotonic() - last_evict >= self.config.evict_interval_s:
                    last_evict = time.monotonic()
                    self.handler.evict()
                    self.updater.prune(int(time.time() * 1000))
                index = self.handler.index
                INDEX_POSTS.set(len(index))
                INDEX_BYTES.set(index.memory_bytes())
                interval = self.config.snapshot_interval_s
                if interval and time.monotonic() - last_snapshot >= interval:
                    last_snapshot = time.monotonic()
                    self.save_snapshot()
            except Exception:
                log.exception("retrieval index update failed; retrying")
                time.sleep(0.5)

    def save_snapshot(self) -> bool:
        """Writes the index snapshot if snapshots are on, the replay is done and anything changed."""
        if not self.config.snapshots or not self.caught_up.is_set():
            return False
        if self.updater.applied == self._snapshot_applied:
            return False
        applied = self.updater.applied
        try:
            SNAPSHOT_SECONDS.set(self.handler.save_snapshot(self.snapshot_dir)["seconds"])
        except OSError:
            log.exception("retrieval index snapshot failed", extra={"path": str(self.snapshot_dir)})
            return False
        self._snapshot_applied = applied
        return True

    def _load_snapshot(self) -> None:
        if self.config.snapshots and self.handler.load_snapshot(self.snapshot_dir):
            self.snapshot_loaded = True
            self.handler.evict()

    async def start(self) -> None:
        await asyncio.to_thread(self._load_snapshot)
        t = threading.Thread(target=self._ingest_loop, name="retrieval-ingest", daemon=True)
        t.start()
        self._threads.append(t)
        servicer = RetrievalServicer(self.handler, self.settings.admin_token or None)
        # Retrieve requests over the size limits are refused before they are read or parsed
        self.server = GrpcServer(
            self.grpc_address,
            self.config.max_concurrent_rpcs,
            max_receive_bytes=servicer.max_request_bytes,
            credentials=server_credentials(self.settings),
        )
        self.server.add(add_retrieval_service, servicer, SERVICE_NAME)
        await self.server.start(serving=False)
        self._serve_task = self.watch.start(self.server, self._stop)

    async def wait_caught_up(self, timeout_s: float = 60.0) -> None:
        await wait_caught_up(self.caught_up, timeout_s, "retrieval index")

    async def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            await self.server.stop(grace_s=2.0)
        for t in self._threads:
            t.join(5)
        if not any(t.is_alive() for t in self._threads):
            await asyncio.to_thread(self.save_snapshot)
        self.consumer.close()
        if self._redis is not None:
            self._redis.close()
