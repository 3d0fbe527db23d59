"""How home_mixer reaches its dependencies: protocols (`protocols`), gRPC clients, the Redis
user-state client and their wiring. In-process clients live in the app layer
(`foryou.app.in_process`), since they wire products together."""

from home_mixer.clients.grpc_clients import GrpcRankingClient, GrpcRetrievalClient, GrpcThunderClient
from home_mixer.clients.home_mixer_clients import HomeMixerClients, build_clients_from_addresses, unique
from home_mixer.clients.protocols import (
    RankingClient,
    RetrievalClient,
    SidRetrievalClient,
    ThunderClient,
    UserStateClient,
)
from home_mixer.clients.redis_user_state import RedisUserState, served_key
from home_mixer.predict_decoder import Predictions, as_predictions

__all__ = [
    "GrpcRankingClient",
    "GrpcRetrievalClient",
    "GrpcThunderClient",
    "HomeMixerClients",
    "Predictions",
    "RankingClient",
    "RedisUserState",
    "RetrievalClient",
    "SidRetrievalClient",
    "ThunderClient",
    "UserStateClient",
    "as_predictions",
    "build_clients_from_addresses",
    "served_key",
    "unique",
]
