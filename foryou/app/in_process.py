"""In-process wiring between products (tests, benchmarks, a single-process stack): home_mixer's
client protocols implemented over Thunder's and the ranker's transport-free handlers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from candidate_pipeline import current_context
from home_mixer.predict_decoder import Predictions
from phoenix.ranker.servicer import candidates_from_proto, history_from_proto
from protos import phoenix_pb2, thunder_pb2
from thunder.handler import InNetworkPostsHandler


class InProcessThunderClient:
    """Wraps Thunder's transport-free handler (`handle(request) -> response`)."""

    def __init__(self, handler: InNetworkPostsHandler) -> None:
        self.handler = handler

    async def get_in_network_posts(
        self, request: thunder_pb2.GetInNetworkPostsRequest
    ) -> thunder_pb2.GetInNetworkPostsResponse:
        return self.handler.handle(request)


class RankingHandlerClient:
    """In process over phoenix.ranker's RankingHandler (`predict(user_id, History, Candidates,
    deadline) -> (probs, continuous)`): no proto round trip for the answer, the model runs in a
    worker thread, and the pipeline's remaining request time becomes the ranker's deadline."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    async def predict(self, request: phoenix_pb2.PredictRequest) -> Predictions:
        ctx = current_context()
        remaining = ctx.remaining_s() if ctx is not None else None
        deadline = None if remaining is None else time.monotonic() + remaining
        version = request.model_version  # a registry version, "" = the served model
        probs, cont = await asyncio.to_thread(
            self.handler.predict,
            request.user_id,
            history_from_proto(request.action_sequence),
            candidates_from_proto(request.candidates),
            deadline,
            version,
        )
        served = self.handler.resolve(version).version if version else self.handler.model_version
        return Predictions(np.asarray(probs, dtype=np.float64), np.asarray(cont), served)
