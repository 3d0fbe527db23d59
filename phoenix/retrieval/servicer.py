"""gRPC `phoenix.RetrievalService`: Retrieve + authenticated ReloadModel over a `RetrievalHandler`
(grpc.aio; the CPU-bound work runs on the servicer's worker threads so the event loop keeps
serving).

Retrieve: an oversized request is refused unparsed (phoenix/request_limits.py), the counts are
checked before any conversion, and admission runs on the event loop before the request is handed
to a worker: a request that cannot finish before its deadline behind the retrievals already
accepted is answered RESOURCE_EXHAUSTED at once instead of waiting in the executor's queue."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc

from foryou.core.admission import ShedError
from foryou.core.grpc_server import check_admin_token
from phoenix.request_limits import (
    CheckpointLoadError,
    OversizedRequest,
    history_bytes,
    size_guarded_adder,
    worst_case_bytes,
)
from phoenix.retrieval.handler import REJECTED, RetrievalHandler
from protos import phoenix_pb2, phoenix_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = "foryou.phoenix.RetrievalService"
ADMIN_TOKEN_ENV = "FORYOU_ADMIN_TOKEN"


def max_retrieve_request_bytes(max_history: int, max_exclusions: int) -> int:
    """Worst-case encoded size of a RetrieveRequest within the limits, plus headroom: larger
    requests cannot be valid and are refused unparsed. Also the value for the server's max receive
    message size."""
    return worst_case_bytes(
        phoenix_pb2.RetrieveRequest(user_id=-1, top_k=2**32 - 1).ByteSize(),
        history_bytes(max_history),
        1 + 5 + 10 * max_exclusions,  # packed int64s: tag, length, ≤ 10 bytes each
    )


def add_retrieval_service(servicer: RetrievalServicer, server: Any) -> None:
    """`add_RetrievalServiceServicer_to_server` with Retrieve's request-size guard."""
    size_guarded_adder(
        phoenix_pb2.DESCRIPTOR.services_by_name["RetrievalService"], {"Retrieve": servicer.max_request_bytes}
    )(servicer, server)


class RetrievalServicer(phoenix_pb2_grpc.RetrievalServiceServicer):
    def __init__(self, handler: RetrievalHandler, admin_token: str | None = None) -> None:
        self.handler = handler
        self.admin_token = admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV, "")
        # as many workers as the admission estimate assumes run at once
        self._executor = ThreadPoolExecutor(handler.config.max_in_flight, thread_name_prefix="retrieve")

    @property
    def max_request_bytes(self) -> int:
        c = self.handler.config
        return max_retrieve_request_bytes(c.max_history, c.max_exclusions)

    async def Retrieve(self, request: phoenix_pb2.RetrieveRequest, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        h = self.handler
        if isinstance(request, OversizedRequest):
            REJECTED.labels("too_large").inc()
            c = h.config
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                request.message(f"{c.max_history:,} history items, {c.max_exclusions:,} exclusions"),
            )
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            h.check_request(request)
            ticket = h.admit(h.request_units(request), deadline)
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except ShedError as e:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        except TimeoutError as e:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(e))
        ticket.submit()
        job: Future[phoenix_pb2.RetrieveResponse] = self._executor.submit(h.handle, request, deadline, ticket)
        # handle() releases the ticket when it runs; a job cancelled before it started (the caller
        # went away) must release it here or the backlog would count it forever
        job.add_done_callback(lambda f: h.release(ticket, False) if f.cancelled() else None)
        try:
            resp = await asyncio.wrap_future(job)
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except TimeoutError as e:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(e))
        if deadline is not None and time.monotonic() > deadline:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded during retrieval")
        return resp

    async def ReloadModel(  # noqa: N802
        self, request: phoenix_pb2.ReloadModelRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        md = dict(context.invocation_metadata() or ())
        if not md.get("authorization"):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "missing 'authorization: Bearer <token>' metadata"
            )
        if not check_admin_token(context, self.admin_token):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "invalid admin token")
        if not request.path:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "path is required")
        try:
            version = await asyncio.to_thread(self.handler.reload, request.path)
        except PermissionError as e:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        except (FileNotFoundError, CheckpointLoadError) as e:
            # one line; the old model and index keep serving
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"cannot load {request.path}: {e}")
        return phoenix_pb2.ReloadModelResponse(model_version=version)
