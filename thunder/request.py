"""Builds a GetInNetworkPosts request (tests, benchmarks, tools)."""

from __future__ import annotations

from collections.abc import Sequence

from protos import thunder_pb2 as pb


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
