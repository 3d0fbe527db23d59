"""Calls to a running home_mixer shared by `foryou feed` and the web page (`foryou ui`): one
function per RPC, over the channel `foryou.core.tls.channel` opens (TLS when configured)."""

from __future__ import annotations

from foryou.core.settings import Settings
from foryou.core.tls import channel
from protos import home_mixer_pb2 as hm
from protos import home_mixer_pb2_grpc


def get_debug_feed(
    address: str, settings: Settings | None, viewer_id: int, timeout_s: float = 10.0
) -> hm.GetDebugScoredPostsResponse:
    """The debug (explain) response for `viewer_id`: every candidate with its action probabilities,
    multipliers and scores, the filter that removed it, the effective params and the query's
    hydrated features. Raises grpc.RpcError."""
    req = hm.GetDebugScoredPostsRequest(query=hm.GetScoredPostsRequest(viewer_id=viewer_id))
    with channel(address, settings) as ch:
        return home_mixer_pb2_grpc.ScoredPostsServiceStub(ch).GetDebugScoredPosts(req, timeout=timeout_s)


def get_feed(
    address: str, settings: Settings | None, viewer_id: int, timeout_s: float = 10.0
) -> hm.GetScoredPostsResponse:
    """The served feed for `viewer_id`. Raises grpc.RpcError."""
    with channel(address, settings) as ch:
        stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
        return stub.GetScoredPosts(hm.GetScoredPostsRequest(viewer_id=viewer_id), timeout=timeout_s)
