"""gRPC implementations of the client protocols: Thunder, retrieval and the ranker."""

from __future__ import annotations

import grpc

from home_mixer.predict_decoder import Predictions, decode_predict_response
from protos import phoenix_pb2, phoenix_pb2_grpc, thunder_pb2, thunder_pb2_grpc


class GrpcThunderClient:
    def __init__(self, address: str, timeout_s: float = 0.5) -> None:
        self.address, self.timeout_s = address, timeout_s
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = thunder_pb2_grpc.InNetworkPostsServiceStub(self._channel)

    async def get_in_network_posts(
        self, request: thunder_pb2.GetInNetworkPostsRequest
    ) -> thunder_pb2.GetInNetworkPostsResponse:
        return await self._stub.GetInNetworkPosts(request, timeout=self.timeout_s)

    async def close(self) -> None:
        await self._channel.close()


class GrpcRetrievalClient:
    def __init__(self, address: str, timeout_s: float = 0.5) -> None:
        self.address, self.timeout_s = address, timeout_s
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = phoenix_pb2_grpc.RetrievalServiceStub(self._channel)

    async def retrieve(self, request: phoenix_pb2.RetrieveRequest) -> phoenix_pb2.RetrieveResponse:
        return await self._stub.Retrieve(request, timeout=self.timeout_s)

    async def close(self) -> None:
        await self._channel.close()


class GrpcRankingClient:
    def __init__(self, address: str, timeout_s: float = 1.0) -> None:
        self.address, self.timeout_s = address, timeout_s
        self._channel = grpc.aio.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 64 << 20)]
        )
        # the answer is decoded straight into matrices (Predictions), not into a PredictResponse
        self._predict = self._channel.unary_unary(
            "/foryou.phoenix.RankingService/Predict",
            request_serializer=phoenix_pb2.PredictRequest.SerializeToString,
            response_deserializer=decode_predict_response,
        )

    async def predict(self, request: phoenix_pb2.PredictRequest) -> Predictions:
        return await self._predict(request, timeout=self.timeout_s)

    async def close(self) -> None:
        await self._channel.close()
