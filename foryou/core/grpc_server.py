"""gRPC server plumbing shared by every service: health checking, reflection, a bound on in-flight
requests (excess answered RESOURCE_EXHAUSTED by grpc itself), malformed request bodies answered
INVALID_ARGUMENT (one log line, no traceback), and graceful shutdown."""

from __future__ import annotations

import hmac
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from foryou.core import tls
from foryou.core.settings import Settings

log = logging.getLogger(__name__)
ServingStatus = health_pb2.HealthCheckResponse.ServingStatus

# Requests larger than the default 4 MB are legitimate (2,000 candidates with histories).
MAX_MESSAGE_BYTES = 64 << 20


def _options(max_receive_bytes: int) -> list[tuple[str, int]]:
    # a service that knows its largest valid request passes it: gRPC then refuses bigger bodies
    # before they are read into memory
    return [
        ("grpc.max_receive_message_length", max_receive_bytes),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]


class MalformedRequest:
    """Stands in for a request whose bytes did not deserialize. grpc's own handling of a deserializer
    error is UNKNOWN (aio) or INTERNAL (sync) with a traceback logged per call; the wrapped handler
    answers INVALID_ARGUMENT instead."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def details(self) -> str:
        return f"malformed request: {self.error}"


def _safe_deserializer(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserializer(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as e:  # noqa: BLE001 - any failure to decode is the client's bad bytes
            return MalformedRequest(e)

    return deserializer


def _log_malformed(method: str, context: Any, bad: MalformedRequest) -> None:
    log.warning("INVALID_ARGUMENT %s from %s: %s", method, context.peer(), bad.details())


def _reject(method: str, context: Any, bad: MalformedRequest) -> None:
    _log_malformed(method, context, bad)
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad.details())  # raises


async def _reject_async(method: str, context: Any, bad: MalformedRequest) -> None:
    _log_malformed(method, context, bad)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad.details())  # raises


def _checked(requests: Iterator[Any], context: Any, method: str) -> Iterator[Any]:
    for r in requests:
        if isinstance(r, MalformedRequest):
            _reject(method, context, r)
        yield r


async def _checked_async(requests: AsyncIterator[Any], context: Any, method: str) -> AsyncIterator[Any]:
    async for r in requests:
        if isinstance(r, MalformedRequest):
            await _reject_async(method, context, r)
        yield r


def _guard(behavior: Callable[..., Any], method: str, request_streaming: bool) -> Callable[..., Any]:
    """`behavior` with undecodable requests rejected first; the wrapper keeps the behaviour's kind
    (coroutine, async generator, plain function) because grpc.aio dispatches on it."""
    if request_streaming:

        def requests_of(it: Any, context: Any) -> Any:
            if hasattr(it, "__aiter__"):
                return _checked_async(it, context, method)
            return _checked(it, context, method)

        if inspect.isasyncgenfunction(behavior):

            async def stream_gen(it: Any, context: Any) -> AsyncIterator[Any]:
                async for r in behavior(requests_of(it, context), context):
                    yield r

            return stream_gen
        if inspect.iscoroutinefunction(behavior):

            async def stream_coro(it: Any, context: Any) -> Any:
                return await behavior(requests_of(it, context), context)

            return stream_coro

        def stream_sync(it: Any, context: Any) -> Any:
            return behavior(requests_of(it, context), context)

        return stream_sync

    if inspect.isasyncgenfunction(behavior):

        async def unary_gen(request: Any, context: Any) -> AsyncIterator[Any]:
            if isinstance(request, MalformedRequest):
                await _reject_async(method, context, request)
            async for r in behavior(request, context):
                yield r

        return unary_gen
    if inspect.iscoroutinefunction(behavior):

        async def unary_coro(request: Any, context: Any) -> Any:
            if isinstance(request, MalformedRequest):
                await _reject_async(method, context, request)
            return await behavior(request, context)

        return unary_coro

    def unary_sync(request: Any, context: Any) -> Any:
        if isinstance(request, MalformedRequest):
            _reject(method, context, request)
        return behavior(request, context)

    return unary_sync


_FACTORIES: dict[tuple[bool, bool], tuple[str, Callable[..., grpc.RpcMethodHandler]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def reject_malformed(handler: grpc.RpcMethodHandler | None, method: str) -> grpc.RpcMethodHandler | None:
    """The same method handler with a deserializer that never raises and a behaviour that answers
    an undecodable request INVALID_ARGUMENT (one log line) before the servicer sees it."""
    if handler is None or handler.request_deserializer is None:
        return handler  # unknown method (grpc answers UNIMPLEMENTED) or raw bytes wanted
    streaming = (bool(handler.request_streaming), bool(handler.response_streaming))
    attr, factory = _FACTORIES[streaming]
    behavior = getattr(handler, attr)
    return factory(
        _guard(behavior, method, streaming[0]),
        request_deserializer=_safe_deserializer(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


class _Wrapped:
    """Per-method memo of wrapped handlers: a registered method's handler object never changes, so
    each call costs a dict lookup, not a rebuild."""

    def __init__(self) -> None:
        self._memo: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler | None]] = {}

    def get(self, handler: grpc.RpcMethodHandler | None, method: str) -> grpc.RpcMethodHandler | None:
        if handler is None:
            return None
        hit = self._memo.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = reject_malformed(handler, method)
        self._memo[method] = (handler, wrapped)
        return wrapped


class RejectMalformedInterceptor(grpc.ServerInterceptor):
    """Sync (thread-pool) servers: undecodable request bytes -> INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self._wrapped = _Wrapped()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        return self._wrapped.get(continuation(handler_call_details), method)


class AsyncRejectMalformedInterceptor(grpc.aio.ServerInterceptor):
    """grpc.aio servers: undecodable request bytes -> INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self._wrapped = _Wrapped()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        return self._wrapped.get(await continuation(handler_call_details), method)


def _add_port(server: Any, address: str, credentials: grpc.ServerCredentials | None) -> int:
    if credentials is None:
        return int(server.add_insecure_port(address))
    return int(server.add_secure_port(address, credentials))


class GrpcServer:
    """A grpc.aio server with health + reflection. Services start NOT_SERVING until `set_serving`.
    With `credentials` (foryou.core.tls.server_credentials) the port serves TLS only."""

    def __init__(
        self,
        address: str,
        max_concurrent_rpcs: int = 64,
        max_receive_bytes: int = MAX_MESSAGE_BYTES,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.server = grpc.aio.server(
            interceptors=[AsyncRejectMalformedInterceptor()],
            maximum_concurrent_rpcs=max_concurrent_rpcs,
            options=_options(max_receive_bytes),
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = _add_port(self.server, address, credentials)
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
    address: str,
    max_workers: int = 8,
    max_concurrent_rpcs: int = 64,
    max_receive_bytes: int = MAX_MESSAGE_BYTES,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.Server, health.HealthServicer, int]:
    """Thread-pool variant for CPU-bound handlers. Add services, then call `finish_sync_server`.
    With `credentials` the port serves TLS only."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[RejectMalformedInterceptor()],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=_options(max_receive_bytes),
    )
    hs = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    port = _add_port(server, address, credentials)
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


def wait_serving(
    address: str, service: str = "", timeout_s: float = 30.0, settings: Settings | None = None
) -> None:
    """Block until the health check at `address` reports SERVING for `service`; over TLS when
    `settings` configure it (foryou.core.tls)."""
    deadline = time.monotonic() + timeout_s
    with tls.channel(address, settings) as ch:
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
    got = str(md.get("authorization", ""))
    # constant time: the comparison must not leak how much of the token matched
    return bool(expected) and hmac.compare_digest(got.encode(), f"Bearer {expected}".encode())
