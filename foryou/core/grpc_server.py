"""gRPC server plumbing shared by every service: health checking, reflection, a bound on in-flight
requests (excess answered RESOURCE_EXHAUSTED by grpc itself), and graceful shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

ServingStatus = health_pb2.HealthCheckResponse.ServingStatus

# Requests larger than the default 4 MB are legitimate (2,000 candidates with histories).
_OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


class GrpcServer:
    """A grpc.aio server with health + reflection. Services start NOT_SERVING until `set_serving`."""

    def __init__(self, address: str, max_concurrent_rpcs: int = 64) -> None:
        self.server = grpc.aio.server(maximum_concurrent_rpcs=max_concurrent_rpcs, options=_OPTIONS)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise RuntimeError(f"could not bind {address}")
        self.host = address.rsplit(":", 1)[0]
        self._services: list[str] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def add(self, add_fn: Callable[[Any, grpc.aio.Server], None], servicer: Any, service_name: str) -> None:
        add_fn(servicer, self.server)
        self._services.append(service_name)

    async def start(self, serving: bool = True) -> None:
        names = [*self._services, health.SERVICE_NAME, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        await self.server.start()
        await self.set_serving(serving)

    async def set_serving(self, serving: bool, service: str | None = None) -> None:
        status = ServingStatus.SERVING if serving else ServingStatus.NOT_SERVING
        for name in [service] if service is not None else [*self._services, ""]:
            await self.health.set(name, status)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Graceful: report NOT_SERVING, stop accepting, let in-flight calls finish within `grace_s`."""
        await self.set_serving(False)
        await self.server.stop(grace_s)


def make_sync_server(
    address: str, max_workers: int = 8, max_concurrent_rpcs: int = 64
) -> tuple[grpc.Server, health.HealthServicer, int]:
    """Thread-pool variant for CPU-bound handlers. Add services, then call `finish_sync_server`."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=_OPTIONS,
    )
    hs = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind {address}")
    return server, hs, port


def finish_sync_server(
    server: grpc.Server, hs: health.HealthServicer, service_names: Sequence[str], serving: bool = True
) -> None:
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    server.start()
    status = ServingStatus.SERVING if serving else ServingStatus.NOT_SERVING
    for name in [*service_names, ""]:
        hs.set(name, status)


def wait_serving(address: str, service: str = "", timeout_s: float = 30.0) -> None:
    """Block until the health check at `address` reports SERVING for `service`."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while True:
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if r.status == ServingStatus.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} {service or '(server)'} not SERVING within {timeout_s}s")
            time.sleep(0.1)


def check_admin_token(context: Any, expected: str) -> bool:
    """ReloadModel auth: metadata `authorization: Bearer <token>` must match FORYOU_ADMIN_TOKEN.
    With no token configured, admin calls are refused."""
    md = dict(context.invocation_metadata() or ())
    got = md.get("authorization", "")
    return bool(expected) and got == f"Bearer {expected}"
