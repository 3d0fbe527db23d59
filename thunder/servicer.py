"""gRPC face of the handler: status codes only, no logic."""

from __future__ import annotations

import time

import grpc

from foryou.core.admission import ShedError
from protos import thunder_pb2 as pb
from protos import thunder_pb2_grpc
from thunder import metrics
from thunder.handler import InNetworkPostsHandler, InvalidRequest, RateLimited

SERVICE_NAME = "foryou.thunder.InNetworkPostsService"


class InNetworkPostsServicer(thunder_pb2_grpc.InNetworkPostsServiceServicer):
    def __init__(self, handler: InNetworkPostsHandler) -> None:
        self.handler = handler

    async def GetInNetworkPosts(  # noqa: N802 - grpc naming
        self, request: pb.GetInNetworkPostsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetInNetworkPostsResponse:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            metrics.REJECTED.labels("deadline").inc()
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline already passed")
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            return await self.handler.serve(request, deadline)
        except InvalidRequest as e:
            metrics.REJECTED.labels("invalid").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise  # unreachable: abort raises
        except ShedError as e:  # cannot finish before its deadline: refused at once
            metrics.REJECTED.labels("shed").inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
            raise
        except RateLimited as e:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
            raise
