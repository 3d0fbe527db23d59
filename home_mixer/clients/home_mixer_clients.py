"""The four clients a home_mixer needs, and their gRPC + Redis wiring."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from foryou.core import user_state
from home_mixer.clients.grpc_clients import GrpcRankingClient, GrpcRetrievalClient, GrpcThunderClient
from home_mixer.clients.protocols import RankingClient, RetrievalClient, ThunderClient, UserStateClient
from home_mixer.clients.redis_user_state import RedisUserState


@dataclass(slots=True)
class HomeMixerClients:
    thunder: ThunderClient
    retrieval: RetrievalClient
    ranking: RankingClient
    user_state: UserStateClient

    async def close(self) -> None:
        for c in (self.thunder, self.retrieval, self.ranking, self.user_state):
            close = getattr(c, "close", None)
            if close is not None:
                await close()


def build_clients_from_addresses(
    thunder: str, retrieval: str, ranker: str, redis_url: str, redis_prefix: str = user_state.DEFAULT_PREFIX
) -> HomeMixerClients:
    """gRPC clients for the three services plus the Redis state reader. Call inside the event loop
    that will use them (grpc.aio channels bind to it)."""
    return HomeMixerClients(
        thunder=GrpcThunderClient(thunder),
        retrieval=GrpcRetrievalClient(retrieval),
        ranking=GrpcRankingClient(ranker),
        user_state=RedisUserState(redis_url, redis_prefix),
    )


def unique(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ids))
