"""A Thunder gRPC server in its own process for the overload test (tests/thunder/test_overload.py):
the real servicer, handler and admission over an in-memory store of `authors` x `per_author` posts
(no Kafka), each store query slowed by `delay_ms` of sleep: a stand-in for a large store that costs
no CPU, so how long a query takes does not depend on how busy the machine is. Prints "<grpc
address> <metrics port>" once serving; runs until killed.

    python tests/thunder/overload_server.py AUTHORS PER_AUTHOR DELAY_MS
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from foryou.core.grpc_server import GrpcServer
from foryou.core.metrics import start_metrics_server
from protos import thunder_pb2_grpc
from thunder.config import ThunderConfig
from thunder.handler import InNetworkPostsHandler
from thunder.servicer import SERVICE_NAME, InNetworkPostsServicer
from thunder.store import PostRecord, PostStore, QueryResult


class SlowStore(PostStore):
    delay_s = 0.0

    def get_posts(self, *args: Any, **kw: Any) -> QueryResult:
        time.sleep(self.delay_s)
        return super().get_posts(*args, **kw)


async def serve(authors: int, per_author: int, delay_ms: float) -> None:
    now = int(time.time())
    store = SlowStore()
    store.delay_s = delay_ms / 1000
    store.insert(
        [
            PostRecord(a * 1000 + i + 1, a + 1, now - 10 - i)
            for a in range(authors)
            for i in range(per_author)
        ],
        now_s=now,
    )
    store.rebuild_snapshot()
    handler = InNetworkPostsHandler(store, ThunderConfig.default(qps_limit=0))
    server = GrpcServer("127.0.0.1:0")
    server.add(
        thunder_pb2_grpc.add_InNetworkPostsServiceServicer_to_server,
        InNetworkPostsServicer(handler),
        SERVICE_NAME,
    )
    await server.start(serving=True)
    print(server.address, start_metrics_server(), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
