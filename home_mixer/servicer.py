"""gRPC face of the scored-posts and engagement-log handlers: status codes only, no logic. Feed
requests are validated, then admitted against their deadline (foryou/core/admission.py: what
cannot finish in time is answered RESOURCE_EXHAUSTED at once), then run within the deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import grpc

from foryou.core.admission import ShedError
from home_mixer.engagement_log_handler import (
    EngagementLogHandler,
    EngagementLogUnavailable,
    InvalidEngagements,
)
from home_mixer.handler import ScoredPostsHandler
from protos import home_mixer_pb2 as pb
from protos import home_mixer_pb2_grpc

SERVICE_NAME = "foryou.home_mixer.ScoredPostsService"
T = TypeVar("T")


class ScoredPostsServicer(home_mixer_pb2_grpc.ScoredPostsServiceServicer):
    def __init__(self, handler: ScoredPostsHandler, engagements: EngagementLogHandler | None = None) -> None:
        self.handler, self.engagements = handler, engagements

    async def GetScoredPosts(  # noqa: N802 - grpc naming
        self, request: pb.GetScoredPostsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetScoredPostsResponse:
        await _check_deadline(context)
        try:
            self.handler.check(request)
            async with self.handler.admission.admitted(_deadline(context)):
                return await _within_deadline(self.handler.get_scored_posts(request), context)
        except ShedError as e:  # cannot finish before its deadline: refused at once
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
            raise
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "client deadline passed while ranking")
            raise
        except ValueError as e:  # InvalidQuery
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise  # unreachable: abort raises

    async def GetDebugScoredPosts(  # noqa: N802 - grpc naming
        self, request: pb.GetDebugScoredPostsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDebugScoredPostsResponse:
        await _check_deadline(context)
        try:
            self.handler.check(request.query)
            async with self.handler.admission.admitted(_deadline(context)):
                return await _within_deadline(self.handler.get_debug_scored_posts(request), context)
        except ShedError as e:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
            raise
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "client deadline passed while ranking")
            raise
        except ValueError as e:  # InvalidQuery or a bad param override
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise

    async def LogEngagements(  # noqa: N802 - grpc naming
        self, request: pb.LogEngagementsRequest, context: grpc.aio.ServicerContext
    ) -> pb.LogEngagementsResponse:
        await _check_deadline(context)
        if self.engagements is None:  # no Kafka configured for this process: retrying cannot help
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this home_mixer has no engagement log")
            raise AssertionError("unreachable")
        try:
            return await _within_deadline(self.engagements.log_engagements(request), context)
        except TimeoutError:  # events may still be delivered: the client retries (at-least-once)
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED, "client deadline passed before Kafka acked"
            )
            raise
        except InvalidEngagements as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise
        except EngagementLogUnavailable as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
            raise


async def _within_deadline(coro: Awaitable[T], context: grpc.aio.ServicerContext) -> T:
    """Stop working once the client's deadline has passed (it would not get the answer anyway). The
    pipeline's own request deadline (1 s) still bounds every request with degraded answers."""
    remaining = context.time_remaining()
    if remaining is None:
        return await coro
    return await asyncio.wait_for(coro, remaining)


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The client's deadline as a time.monotonic() value (None: it set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


async def _check_deadline(context: grpc.aio.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline already passed")
