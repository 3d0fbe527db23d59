"""gRPC `phoenix.RetrievalService`: Retrieve + authenticated ReloadModel over a `RetrievalHandler`
(grpc.aio; the CPU-bound work runs in a worker thread so the event loop keeps serving)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import grpc

from foryou.core.grpc_server import check_admin_token
from phoenix.retrieval.handler import RetrievalHandler
from protos import phoenix_pb2, phoenix_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = "foryou.phoenix.RetrievalService"
ADMIN_TOKEN_ENV = "FORYOU_ADMIN_TOKEN"


class RetrievalServicer(phoenix_pb2_grpc.RetrievalServiceServicer):
    def __init__(self, handler: RetrievalHandler, admin_token: str | None = None) -> None:
        self.handler = handler
        self.admin_token = admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV, "")

    async def Retrieve(self, request: phoenix_pb2.RetrieveRequest, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            resp = await asyncio.to_thread(self.handler.handle, request, deadline)
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
        except (FileNotFoundError, ValueError) as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"cannot load {request.path}: {e}")
        return phoenix_pb2.ReloadModelResponse(model_version=version)
