"""gRPC face of the handler: status codes only, no logic."""

from __future__ import annotations

import grpc

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
        try:
            return self.handler.get_in_network_posts(request)
        except InvalidRequest as e:
            metrics.REJECTED.labels("invalid").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise  # unreachable: abort raises
        except RateLimited as e:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
            raise
