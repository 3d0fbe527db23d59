"""How home_mixer reaches Thunder: over gRPC, or in process (tests, `foryou serve all`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from protos import thunder_pb2 as pb
from protos import thunder_pb2_grpc
from thunder.handler import InNetworkPostsHandler


def make_request(
    user_id: int,
    following_user_ids: Sequence[int],
    exclude_post_ids: Sequence[int] = (),
    max_results: int = 0,
    is_video_request: bool = False,
) -> pb.GetInNetworkPostsRequest:
    return pb.GetInNetworkPostsRequest(
        user_id=user_id,
        following_user_ids=following_user_ids,
        exclude_post_ids=exclude_post_ids,
        max_results=max_results,
        is_video_request=is_video_request,
        algorithm="default",
    )


class ThunderClient(Protocol):
    async def get_in_network_posts(
        self,
        user_id: int,
        following_user_ids: Sequence[int],
        exclude_post_ids: Sequence[int] = (),
        max_results: int = 0,
        is_video_request: bool = False,
        timeout_s: float | None = None,
    ) -> list[pb.LightPost]: ...


class GrpcThunderClient:
    def __init__(self, address: str) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = thunder_pb2_grpc.InNetworkPostsServiceStub(self._channel)

    async def get_in_network_posts(
        self,
        user_id: int,
        following_user_ids: Sequence[int],
        exclude_post_ids: Sequence[int] = (),
        max_results: int = 0,
        is_video_request: bool = False,
        timeout_s: float | None = None,
    ) -> list[pb.LightPost]:
        req = make_request(user_id, following_user_ids, exclude_post_ids, max_results, is_video_request)
        resp = await self._stub.GetInNetworkPosts(req, timeout=timeout_s)
        return list(resp.posts)

    async def close(self) -> None:
        await self._channel.close()


class InProcessThunderClient:
    def __init__(self, handler: InNetworkPostsHandler) -> None:
        self.handler = handler

    async def get_in_network_posts(
        self,
        user_id: int,
        following_user_ids: Sequence[int],
        exclude_post_ids: Sequence[int] = (),
        max_results: int = 0,
        is_video_request: bool = False,
        timeout_s: float | None = None,
    ) -> list[pb.LightPost]:
        req = make_request(user_id, following_user_ids, exclude_post_ids, max_results, is_video_request)
        return list(self.handler.handle(req).posts)

    async def close(self) -> None:
        return None
