"""home_mixer's view of its dependencies: small async protocols, with gRPC and in-process
implementations. Components depend only on these protocols, so unit tests use fakes and the
service wires either transport."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import numpy as np
import redis.asyncio as aioredis

from foryou import user_state
from foryou.user_state import AuthorData, SocialGraph
from protos import (
    events_pb2,
    phoenix_pb2,
    phoenix_pb2_grpc,
    thunder_pb2,
    thunder_pb2_grpc,
)


class ThunderClient(Protocol):
    async def get_in_network_posts(
        self, request: thunder_pb2.GetInNetworkPostsRequest
    ) -> thunder_pb2.GetInNetworkPostsResponse: ...


class RetrievalClient(Protocol):
    async def retrieve(self, request: phoenix_pb2.RetrieveRequest) -> phoenix_pb2.RetrieveResponse: ...


@dataclass(slots=True)
class Predictions:
    """Ranker output as matrices: probs [C, 64] indexed by ActionName, continuous [C, 8] ([:, 1] =
    dwell seconds), rows in the request's candidate order."""

    probs: np.ndarray
    continuous: np.ndarray
    model_version: str = ""


def _matrix(rows: Sequence[Any], width: int) -> np.ndarray:
    widths = {len(r) for r in rows}
    if widths == {width}:
        return np.array(rows, dtype=np.float64).reshape(len(rows), width)
    out = np.zeros((len(rows), width))  # ragged: absent heads count as missing (0)
    for i, r in enumerate(rows):
        vals = list(r)[:width]
        out[i, : len(vals)] = vals
    return out


def as_predictions(resp: phoenix_pb2.PredictResponse | Predictions) -> Predictions:
    if isinstance(resp, Predictions):
        return resp
    preds = resp.predictions
    return Predictions(
        _matrix([p.action_probs for p in preds], 64),
        _matrix([p.continuous for p in preds], 8),
        resp.model_version,
    )


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


# ---- gRPC ----------------------------------------------------------------------------------------


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
        from home_mixer.predict_decoder import decode_predict_response

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


# ---- in-process ----------------------------------------------------------------------------------


def _method(target: Any, names: Sequence[str]) -> Any:
    for n in names:
        fn = getattr(target, n, None)
        if fn is not None:
            return fn
    raise TypeError(f"{type(target).__name__} has none of {list(names)}")


async def _call(fn: Any, request: Any, offload: bool) -> Any:
    """Call a transport-free handler method, sync or async; CPU-bound sync handlers (ranker,
    retrieval) run in a worker thread so the event loop keeps serving."""
    if inspect.iscoroutinefunction(fn):
        return await fn(request)
    if offload:
        return await asyncio.to_thread(fn, request)
    out = fn(request)
    return await out if inspect.isawaitable(out) else out


class InProcessThunderClient:
    """Wraps Thunder's transport-free handler (`handle(request) -> response`)."""

    def __init__(self, handler: Any) -> None:
        self._fn = _method(handler, ("handle", "get_in_network_posts_response"))

    async def get_in_network_posts(
        self, request: thunder_pb2.GetInNetworkPostsRequest
    ) -> thunder_pb2.GetInNetworkPostsResponse:
        return await _call(self._fn, request, offload=False)


class ThunderClientAdapter:
    """Wraps thunder.client's ThunderClient (keyword arguments in, list of LightPost out)."""

    def __init__(self, client: Any, timeout_s: float = 0.5) -> None:
        self.client, self.timeout_s = client, timeout_s

    async def get_in_network_posts(
        self, request: thunder_pb2.GetInNetworkPostsRequest
    ) -> thunder_pb2.GetInNetworkPostsResponse:
        posts = await self.client.get_in_network_posts(
            user_id=request.user_id,
            following_user_ids=list(request.following_user_ids),
            exclude_post_ids=list(request.exclude_post_ids),
            max_results=request.max_results,
            is_video_request=request.is_video_request,
            timeout_s=self.timeout_s,
        )
        return thunder_pb2.GetInNetworkPostsResponse(posts=posts)


class InProcessRetrievalClient:
    """Wraps retrieval's transport-free handler (`retrieve(request)` or `handle(request)`)."""

    def __init__(self, handler: Any, offload: bool = True) -> None:
        self._fn, self.offload = _method(handler, ("retrieve", "handle")), offload

    async def retrieve(self, request: phoenix_pb2.RetrieveRequest) -> phoenix_pb2.RetrieveResponse:
        return await _call(self._fn, request, self.offload)


class InProcessRankingClient:
    """Wraps anything with a request-style `predict(request)` / `handle(request)`."""

    def __init__(self, handler: Any, offload: bool = True) -> None:
        self._fn, self.offload = _method(handler, ("predict", "handle")), offload

    async def predict(self, request: phoenix_pb2.PredictRequest) -> phoenix_pb2.PredictResponse:
        return await _call(self._fn, request, self.offload)


class RankingHandlerClient:
    """In process over phoenix.ranker's RankingHandler (`predict(user_id, History, Candidates,
    deadline) -> (probs, continuous)`): no proto round trip for the answer, the model runs in a
    worker thread, and the pipeline's remaining request time becomes the ranker's deadline."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    async def predict(self, request: phoenix_pb2.PredictRequest) -> Predictions:
        from candidate_pipeline import current_context
        from phoenix.ranker.servicer import candidates_from_proto, history_from_proto

        ctx = current_context()
        remaining = ctx.remaining_s() if ctx is not None else None
        deadline = None if remaining is None else time.monotonic() + remaining
        probs, cont = await asyncio.to_thread(
            self.handler.predict,
            request.user_id,
            history_from_proto(request.action_sequence),
            candidates_from_proto(request.candidates),
            deadline,
        )
        return Predictions(np.asarray(probs, dtype=np.float64), np.asarray(cont), self.handler.model_version)


# ---- Redis ---------------------------------------------------------------------------------------


def served_key(viewer_id: int, prefix: str) -> str:
    return f"{prefix}served:{viewer_id}"


class RedisUserState:
    """UserStateClient over the ingesters' key layout (foryou.user_state). Short socket timeouts so a
    dead Redis fails fast and the pipeline degrades instead of hanging."""

    def __init__(
        self, redis_url: str, prefix: str = user_state.DEFAULT_PREFIX, timeout_s: float = 0.25
    ) -> None:
        self.client = aioredis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self.prefix = prefix
        self._reader = user_state.AsyncUserStateReader(self.client, prefix)

    async def read_social_graph(self, user_id: int) -> SocialGraph:
        return await self._reader.read_social_graph(user_id)

    async def read_action_sequence(self, user_id: int) -> phoenix_pb2.ActionSequence:
        return user_state.action_sequence_to_proto(await self._reader.read_action_sequence(user_id))

    async def mget_posts(self, post_ids: Sequence[int]) -> list[events_pb2.Post | None]:
        return await self._reader.mget_posts(post_ids)

    async def mget_authors(self, author_ids: Sequence[int]) -> list[AuthorData | None]:
        return await self._reader.mget_authors(author_ids)

    async def authors_blocking(self, viewer_id: int, author_ids: Sequence[int]) -> set[int]:
        ids = list(dict.fromkeys(author_ids))
        if not ids:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for a in ids:
            pipe.sismember(user_state.social_key("blocked", a, self.prefix), str(viewer_id))
        res = await pipe.execute()
        return {a for a, hit in zip(ids, res, strict=True) if hit}

    async def add_served(self, viewer_id: int, post_ids: Sequence[int], ttl_s: int, max_n: int) -> None:
        if not post_ids:
            return
        key = served_key(viewer_id, self.prefix)
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(key, {str(p): now_ms for p in post_ids})
        pipe.zremrangebyscore(key, "-inf", now_ms - ttl_s * 1000)  # entries older than the window
        pipe.zremrangebyrank(key, 0, -max_n - 1)  # keep the newest max_n
        pipe.expire(key, ttl_s)
        await pipe.execute()

    async def read_served(self, viewer_id: int) -> list[int]:
        return [int(x) for x in await self.client.zrange(served_key(viewer_id, self.prefix), 0, -1)]

    async def close(self) -> None:
        await self.client.aclose()


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
