"""home_mixer's view of its dependencies: small async protocols. Components depend only on these,
so unit tests use fakes and the service wires gRPC (here) or in-process clients (the app layer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from foryou.core.user_state import AuthorData, SocialGraph
from home_mixer.predict_decoder import Predictions
from protos import events_pb2, phoenix_pb2, thunder_pb2


class ThunderClient(Protocol):
    async def get_in_network_posts(
        self, request: thunder_pb2.GetInNetworkPostsRequest
    ) -> thunder_pb2.GetInNetworkPostsResponse: ...


class RetrievalClient(Protocol):
    async def retrieve(self, request: phoenix_pb2.RetrieveRequest) -> phoenix_pb2.RetrieveResponse: ...


class SidRetrievalClient(Protocol):
    async def retrieve_by_sid(
        self, seed_post_ids: Sequence[int], max_results: int, max_per_seed: int, min_prefix_depth: int
    ) -> list[tuple[int, int, int]]:
        """(post_id, author_id, shared prefix depth) of posts sharing a semantic-id prefix of at
        least `min_prefix_depth` levels with a seed."""
        ...


class RankingClient(Protocol):
    """May answer a PredictResponse (gRPC) or Predictions (in process); see `as_predictions`."""

    async def predict(
        self, request: phoenix_pb2.PredictRequest
    ) -> phoenix_pb2.PredictResponse | Predictions: ...


class UserStateClient(Protocol):
    async def read_social_graph(self, user_id: int) -> SocialGraph: ...
    async def read_action_sequence(self, user_id: int) -> phoenix_pb2.ActionSequence: ...
    async def mget_posts(self, post_ids: Sequence[int]) -> list[events_pb2.Post | None]: ...
    async def mget_authors(self, author_ids: Sequence[int]) -> list[AuthorData | None]: ...
    async def authors_blocking(self, viewer_id: int, author_ids: Sequence[int]) -> set[int]: ...
    async def add_served(self, viewer_id: int, post_ids: Sequence[int], ttl_s: int, max_n: int) -> None: ...
    async def read_served(self, viewer_id: int) -> list[int]: ...
    async def followed_by(self, viewer_id: int, author_ids: Sequence[int]) -> set[int]:
        """The authors among `author_ids` that follow the viewer."""
        ...

    async def mget_engagement_counts(self, post_ids: Sequence[int]) -> list[tuple[int, int] | None]:
        """(views, favs) per post; None when the counter has no entry for it."""
        ...

    async def popular_posts(self, hours: Sequence[int], per_hour: int) -> list[tuple[int, int, int]]:
        """(post_id, author_id, views) of the most viewed posts created in each of `hours`
        (hours since the Unix epoch), up to `per_hour` per hour."""
        ...
