"""The four clients a home_mixer needs, and their gRPC + Redis wiring."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from foryou.core.settings import Settings
from home_mixer.clients.grpc_clients import GrpcRankingClient, GrpcRetrievalClient, GrpcThunderClient
from home_mixer.clients.protocols import (
    RankingClient,
    RetrievalClient,
    SidRetrievalClient,
    ThunderClient,
    UserStateClient,
)
from home_mixer.clients.redis_user_state import RedisUserState


@dataclass(slots=True)
class HomeMixerClients:
    thunder: ThunderClient
    retrieval: RetrievalClient
    ranking: RankingClient
    user_state: UserStateClient
    sid_retrieval: SidRetrievalClient | None = None  # the semantic-ID source's service (none deployed)

    async def close(self) -> None:
        for c in (self.thunder, self.retrieval, self.ranking, self.user_state):
            close = getattr(c, "close", None)
            if close is not None:
                await close()


def build_clients_from_addresses(
    thunder: str, retrieval: str, ranker: str, settings: Settings
) -> HomeMixerClients:
    """gRPC clients for the three services (TLS as `settings` say) plus the Redis state reader
    (settings.redis_url: password and TLS go in the URL). Call inside the event loop that will use
    them (grpc.aio channels bind to it)."""
    return HomeMixerClients(
        thunder=GrpcThunderClient(thunder, settings=settings),
        retrieval=GrpcRetrievalClient(retrieval, settings=settings),
        ranking=GrpcRankingClient(ranker, settings=settings),
        user_state=RedisUserState(settings.redis_url, settings.redis_prefix),
    )


def unique(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ids))
