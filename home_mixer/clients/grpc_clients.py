"""gRPC implementations of the client protocols: Thunder, retrieval and the ranker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from foryou.core import tls
from foryou.core.settings import Settings
from home_mixer.predict_decoder import Predictions, decode_predict_response
from protos import phoenix_pb2, phoenix_pb2_grpc, thunder_pb2, thunder_pb2_grpc


class _GrpcClient:
    """One channel to `address`, TLS when `settings` configure it (foryou.core.tls; None:
    plaintext); every call carries `timeout_s`."""

    def __init__(
        self,
        address: str,
        timeout_s: float,
        settings: Settings | None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.address, self.timeout_s = address, timeout_s
        self._channel = tls.channel(address, settings, aio=True, options=options)

    async def close(self) -> None:
        await self._channel.close()


class GrpcThunderClient(_GrpcClient):
    def __init__(self, address: str, timeout_s: float = 0.5, settings: Settings | None = None) -> None:
        super().__init__(address, timeout_s, settings)
        self._stub = thunder_pb2_grpc.InNetworkPostsServiceStub(self._channel)

    async def get_in_network_posts(
        self, request: thunder_pb2.GetInNetworkPostsRequest
    ) -> thunder_pb2.GetInNetworkPostsResponse:
        return await self._stub.GetInNetworkPosts(request, timeout=self.timeout_s)


class GrpcRetrievalClient(_GrpcClient):
    def __init__(self, address: str, timeout_s: float = 0.5, settings: Settings | None = None) -> None:
        super().__init__(address, timeout_s, settings)
        self._stub = phoenix_pb2_grpc.RetrievalServiceStub(self._channel)

    async def retrieve(self, request: phoenix_pb2.RetrieveRequest) -> phoenix_pb2.RetrieveResponse:
        return await self._stub.Retrieve(request, timeout=self.timeout_s)


class GrpcRankingClient(_GrpcClient):
    def __init__(self, address: str, timeout_s: float = 1.0, settings: Settings | None = None) -> None:
        super().__init__(
            address, timeout_s, settings, options=[("grpc.max_receive_message_length", 64 << 20)]
        )
        # the answer is decoded straight into matrices (Predictions), not into a PredictResponse
        self._predict = self._channel.unary_unary(
            "/foryou.phoenix.RankingService/Predict",
            request_serializer=phoenix_pb2.PredictRequest.SerializeToString,
            response_deserializer=decode_predict_response,
        )

    async def predict(self, request: phoenix_pb2.PredictRequest) -> Predictions:
        return await self._predict(request, timeout=self.timeout_s)
