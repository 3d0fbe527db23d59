"""gRPC `phoenix.RankingService`: Predict + authenticated ReloadModel over a `RankingHandler`."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import grpc
import numpy as np

from foryou.core.grpc_server import check_admin_token, finish_sync_server, make_sync_server
from phoenix.ranker.handler import (
    Candidates,
    DeadlineExceededError,
    History,
    OverloadedError,
    RankingHandler,
)
from protos import phoenix_pb2, phoenix_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = "foryou.phoenix.RankingService"
ADMIN_TOKEN_ENV = "FORYOU_ADMIN_TOKEN"


def history_from_proto(seq: phoenix_pb2.ActionSequence) -> History:
    items = seq.items
    if not items:
        return History.empty()
    rows = [(i.post_id, i.author_id, i.product_surface, i.dwell_ms) for i in items]
    a = np.array(rows, dtype=np.int64).reshape(-1, 4)
    masks = np.array([i.action_mask for i in items], dtype=np.uint64)
    return History(a[:, 0], a[:, 1], masks, a[:, 2], a[:, 3])


def candidates_from_proto(cands: Any) -> Candidates:
    a = np.array([(c.post_id, c.author_id, c.product_surface) for c in cands], dtype=np.int64).reshape(-1, 3)
    return Candidates(a[:, 0], a[:, 1], a[:, 2])


class RankingServicer(phoenix_pb2_grpc.RankingServiceServicer):
    def __init__(self, handler: RankingHandler, admin_token: str | None = None) -> None:
        self.handler = handler
        self.admin_token = admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV, "")

    def Predict(self, request: phoenix_pb2.PredictRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        cands = candidates_from_proto(request.candidates)
        try:
            probs, cont = self.handler.predict(
                request.user_id, history_from_proto(request.action_sequence), cands, deadline
            )
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except OverloadedError as e:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        except DeadlineExceededError as e:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(e))
        preds = [
            phoenix_pb2.CandidatePrediction(post_id=int(pid), action_probs=p, continuous=c)
            for pid, p, c in zip(cands.post_ids.tolist(), probs.tolist(), cont.tolist(), strict=True)
        ]
        return phoenix_pb2.PredictResponse(predictions=preds, model_version=self.handler.model_version)

    def ReloadModel(self, request: phoenix_pb2.ReloadModelRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802
        md = dict(context.invocation_metadata() or ())
        if not md.get("authorization"):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing 'authorization: Bearer <token>' metadata")
        if not check_admin_token(context, self.admin_token):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "invalid admin token")
        if not request.path:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "path is required")
        try:
            version = self.handler.reload(request.path)
        except (FileNotFoundError, ValueError) as e:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"cannot load {request.path}: {e}")
        log.info("ranker model reloaded", extra={"path": request.path, "model_version": version})
        return phoenix_pb2.ReloadModelResponse(model_version=version)


def serve_ranking(
    handler: RankingHandler,
    address: str = "127.0.0.1:0",
    max_workers: int = 8,
    max_concurrent_rpcs: int = 64,
    admin_token: str | None = None,
) -> tuple[grpc.Server, int]:
    """Start a thread-pool gRPC server (health + reflection) with the ranking service.
    Returns (server, port)."""
    server, health, port = make_sync_server(
        address, max_workers=max_workers, max_concurrent_rpcs=max_concurrent_rpcs
    )
    phoenix_pb2_grpc.add_RankingServiceServicer_to_server(RankingServicer(handler, admin_token), server)
    finish_sync_server(server, health, [SERVICE_NAME])
    return server, port
