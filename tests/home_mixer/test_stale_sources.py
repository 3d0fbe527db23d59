"""Thunder or retrieval answering `stale` (their Kafka consumer stalled) marks the feed degraded
("thunder_stale", "retrieval_stale") while the feed is still served from what they returned."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from home_mixer.clients import HomeMixerClients
from home_mixer.handler import ScoredPostsHandler
from home_mixer.pipeline import ScoredPostsPipeline
from protos import home_mixer_pb2, phoenix_pb2, thunder_pb2


class Stale:
    """Wraps a fake client: its answers carry `stale = flag`."""

    def __init__(self, inner: Any, flag: bool) -> None:
        self.inner, self.flag = inner, flag

    async def get_in_network_posts(
        self, request: thunder_pb2.GetInNetworkPostsRequest
    ) -> thunder_pb2.GetInNetworkPostsResponse:
        resp: thunder_pb2.GetInNetworkPostsResponse = await self.inner.get_in_network_posts(request)
        resp.stale = self.flag
        return resp

    async def retrieve(self, request: phoenix_pb2.RetrieveRequest) -> phoenix_pb2.RetrieveResponse:
        resp: phoenix_pb2.RetrieveResponse = await self.inner.retrieve(request)
        resp.stale = self.flag
        return resp


@pytest.mark.parametrize(
    ("thunder_stale", "retrieval_stale", "expected"),
    [
        (False, False, []),
        (True, False, ["thunder_stale"]),
        (False, True, ["retrieval_stale"]),
        (True, True, ["retrieval_stale", "thunder_stale"]),
    ],
)
def test_stale_sources_mark_the_feed_degraded(
    fakes: SimpleNamespace, thunder_stale: bool, retrieval_stale: bool, expected: list[str]
) -> None:
    w = fakes.small_world()
    clients = HomeMixerClients(
        thunder=Stale(w.thunder, thunder_stale),
        retrieval=Stale(w.retrieval, retrieval_stale),
        ranking=w.ranker,
        user_state=w.store,
    )
    handler = ScoredPostsHandler(ScoredPostsPipeline(clients), clients)
    resp = asyncio.run(handler.get_scored_posts(home_mixer_pb2.GetScoredPostsRequest(viewer_id=1)))
    assert list(resp.degraded) == expected
    # still served from what the stale sources returned, in and out of network
    assert {p.in_network for p in resp.scored_posts} == {True, False}
