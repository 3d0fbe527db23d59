"""Builds a GetInNetworkPosts request (tests, benchmarks, tools)."""

from __future__ import annotations

from collections.abc import Sequence

from protos import thunder_pb2 as pb
from thunder.handler import ALGORITHMS


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


HEADROOM_BYTES = 64 << 10  # fields a newer client may add, framing


def max_request_bytes(max_list_size: int) -> int:
    """Worst-case encoded size of a valid request (both id lists at `max_list_size`, every id a
    10-byte varint, every other field at its widest) plus headroom: the server's receive limit,
    so a larger body is refused by gRPC (RESOURCE_EXHAUSTED) before it is read into memory."""
    widest = pb.GetInNetworkPostsRequest(
        user_id=-1,
        max_results=2**32 - 1,
        is_video_request=True,
        algorithm=max(ALGORITHMS, key=len),
        per_author_limits=pb.PerAuthorLimits(
            max_posts_per_author=2**32 - 1, max_replies_reposts_per_author=2**32 - 1
        ),
    )
    packed_ids = 1 + 5 + 10 * max_list_size  # tag, length, ids
    return widest.ByteSize() + 2 * packed_ids + HEADROOM_BYTES
