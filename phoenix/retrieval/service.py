"""Retrieval as a running service: a live updater consuming `posts` (full replay with a fresh
group on start, like Thunder: creates embedded in batches and added, deletes removed, periodic
retention eviction) and the gRPC server. Health stays NOT_SERVING until the updater caught up."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import redis

from foryou.grpc_server import GrpcServer
from foryou.kafka import BatchConsumer, Decoded
from foryou.settings import Settings
from foryou.snowflake import timestamps_ms
from phoenix.retrieval.handler import RetrievalHandler, RetrievalHandlerConfig
from phoenix.retrieval.servicer import SERVICE_NAME, RetrievalServicer
from protos import events_pb2, phoenix_pb2_grpc
from thunder.ingest import decode_post_event

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RetrievalServiceConfig:
    handler: RetrievalHandlerConfig = field(default_factory=RetrievalHandlerConfig)
    max_concurrent_rpcs: int = 64
    evict_interval_s: float = 60.0
    catchup_max_lag: int = 0
    group_id: str = "phoenix-retrieval"


class PostsIndexUpdater:
    """`apply` for the posts consumer: creates within retention -> add (embedded as one batch),
    deletes -> remove. A delete seen before its create (replay) is remembered so the create is
    skipped."""

    def __init__(self, handler: RetrievalHandler) -> None:
        self.handler = handler
        self._deleted: set[int] = set()

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
        self._deleted.update(deletes)
        if deletes:
            self.handler.remove_posts(deletes)
        ids = np.array([p for p in posts if p not in self._deleted], dtype=np.int64)
        if len(ids):
            retention = self.handler.config.index.retention_ms
            ids = ids[timestamps_ms(ids) >= int(time.time() * 1000) - retention]
            self.handler.add_posts(ids, np.array([posts[p] for p in ids.tolist()], dtype=np.int64))


class RetrievalService:
    def __init__(
        self,
        settings: Settings,
        model_dir: str,
        grpc_address: str = "127.0.0.1:0",
        config: RetrievalServiceConfig | None = None,
    ) -> None:
        self.settings = settings
        self.config = config or RetrievalServiceConfig()
        self.grpc_address = grpc_address
        self._redis = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
        self.handler = RetrievalHandler.from_dir(
            model_dir,
            redis_client=self._redis,
            redis_prefix=settings.redis_prefix,
            config=self.config.handler,
        )
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.server: GrpcServer | None = None
        self.consumer: BatchConsumer[events_pb2.PostEvent] = BatchConsumer(
            settings,
            "phoenix-retrieval-posts",
            [settings.topic(settings.posts_topic)],
            decode_post_event,
            PostsIndexUpdater(self.handler),
            group_id=f"{self.config.group_id}-{uuid.uuid4().hex[:8]}",
            replay_from_beginning=True,
        )

    @property
    def address(self) -> str:
        assert self.server is not None, "not started"
        return self.server.address

    def _ingest_loop(self) -> None:
        t0 = last_evict = time.monotonic()
        while not self._stop.is_set():
            try:
                self.consumer.poll_once()
                if not self.caught_up.is_set() and self.consumer.caught_up(self.config.catchup_max_lag):
                    self.caught_up.set()
                    log.info(
                        "retrieval index caught up",
                        extra={"seconds": round(time.monotonic() - t0, 2), "posts": len(self.handler.index)},
                    )
                if time.monotonic() - last_evict >= self.config.evict_interval_s:
                    last_evict = time.monotonic()
                    self.handler.evict()
            except Exception:
                log.exception("retrieval index update failed; retrying")
                time.sleep(0.5)

    async def start(self) -> None:
        t = threading.Thread(target=self._ingest_loop, name="retrieval-ingest", daemon=True)
        t.start()
        self._threads.append(t)
        self.server = GrpcServer(self.grpc_address, self.config.max_concurrent_rpcs)
        self.server.add(
            phoenix_pb2_grpc.add_RetrievalServiceServicer_to_server,
            RetrievalServicer(self.handler, self.settings.admin_token or None),
            SERVICE_NAME,
        )
        await self.server.start(serving=False)
        self._serve_task = asyncio.get_running_loop().create_task(self._serve_when_caught_up())

    async def _serve_when_caught_up(self) -> None:
        while not self.caught_up.is_set() and not self._stop.is_set():
            await asyncio.sleep(0.05)
        if self.server is not None and not self._stop.is_set():
            await self.server.set_serving(True)

    async def wait_caught_up(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.caught_up.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError("retrieval index did not catch up")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            await self.server.stop(grace_s=2.0)
        for t in self._threads:
            t.join(5)
        self.consumer.close()
        if self._redis is not None:
            self._redis.close()
