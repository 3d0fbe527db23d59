"""gRPC `phoenix.RankingService`: Predict + authenticated ReloadModel over a `RankingHandler`.

Predict refuses oversized requests before parsing them (phoenix/request_limits.py), checks the
candidate / history counts and runs admission (shedding what cannot finish in time) before
converting anything, so a refusal costs little more than the parse; the admitted section covers
the proto conversions both ways, which cost about half as much as the model."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import grpc
import numpy as np

from foryou.core.admission import OverloadedError
from foryou.core.grpc_server import check_admin_token, finish_sync_server, make_sync_server
from phoenix.ranker.handler import (
    REJECTED,
    Candidates,
    DeadlineExceededError,
    History,
    RankingHandler,
    UnknownModelVersion,
)
from phoenix.request_limits import (
    WIDEST_VARINT,
    CheckpointLoadError,
    OversizedRequest,
    history_bytes,
    repeated_bytes,
    size_guarded_adder,
    worst_case_bytes,
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


def max_predict_request_bytes(max_candidates: int, max_history: int) -> int:
    """Worst-case encoded size of a PredictRequest within the limits (every id a 10-byte varint),
    plus headroom: larger requests cannot be valid and are refused unparsed. Also the value for
    the server's max receive message size."""
    cand = phoenix_pb2.RankCandidate(post_id=-1, author_id=-1, product_surface=WIDEST_VARINT)
    return worst_case_bytes(
        phoenix_pb2.PredictRequest(user_id=-1).ByteSize(),
        history_bytes(max_history),
        repeated_bytes(cand, max_candidates),
    )


def _response(
    cands: Candidates, probs: np.ndarray, cont: np.ndarray, version: str
) -> phoenix_pb2.PredictResponse:
    preds = [
        phoenix_pb2.CandidatePrediction(post_id=int(pid), action_probs=p, continuous=c)
        for pid, p, c in zip(cands.post_ids.tolist(), probs.tolist(), cont.tolist(), strict=True)
    ]
    return phoenix_pb2.PredictResponse(predictions=preds, model_version=version)


class RankingServicer(phoenix_pb2_grpc.RankingServiceServicer):
    def __init__(self, handler: RankingHandler, admin_token: str | None = None) -> None:
        self.handler = handler
        self.admin_token = admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV, "")

    @property
    def max_request_bytes(self) -> int:
        c = self.handler.config
        return max_predict_request_bytes(c.max_candidates, c.max_history)

    def Predict(self, request: phoenix_pb2.PredictRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if isinstance(request, OversizedRequest):
            REJECTED.labels("too_large").inc()
            c = self.handler.config
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                request.message(f"{c.max_candidates:,} candidates, {c.max_history:,} history items"),
            )
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        h = self.handler
        try:
            # counts first, then admission, then the conversions: a request that is too large or
            # has to be shed costs no more than its parse (under overload most requests are shed)
            n_cand = len(request.candidates)
            h.check_sizes(len(request.action_sequence.items), n_cand)
            loaded = h.resolve(request.model_version)  # a version not loaded yet loads here, once
            with h.admitted(n_cand, deadline) as ticket:
                history = history_from_proto(request.action_sequence)
                cands = candidates_from_proto(request.candidates)
                h.validate(history, cands)
                probs, cont = h.predict_admitted(request.user_id, history, cands, deadline, ticket, loaded)
                return _response(cands, probs, cont, loaded.version)
        except UnknownModelVersion as e:
            REJECTED.labels("unknown_version").inc()
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except OverloadedError as e:  # ShedError included
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        except DeadlineExceededError as e:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(e))

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
        except PermissionError as e:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        except (FileNotFoundError, CheckpointLoadError) as e:
            # one line; the old model keeps serving
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"cannot load {request.path}: {e}")
        log.info("ranker model reloaded", extra={"path": request.path, "model_version": version})
        return phoenix_pb2.ReloadModelResponse(model_version=version)


def serve_ranking(
    handler: RankingHandler,
    address: str = "127.0.0.1:0",
    max_workers: int | None = None,
    max_concurrent_rpcs: int = 64,
    admin_token: str | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.Server, int]:
    """Start a thread-pool gRPC server (health + reflection) with the ranking service.
    Returns (server, port); with `credentials` (foryou.core.tls) the port serves TLS only.
    `max_workers` None = in-flight slots + queue + 4: at most that many threads are held by
    accepted requests, so a spare thread always answers a request that has to be shed at once
    instead of leaving it in gRPC's queue."""
    if max_workers is None:
        max_workers = handler.config.max_in_flight + handler.config.max_queue + 4
    servicer = RankingServicer(handler, admin_token)
    server, health, port = make_sync_server(
        address,
        max_workers=max_workers,
        max_concurrent_rpcs=max_concurrent_rpcs,
        max_receive_bytes=servicer.max_request_bytes,
        credentials=credentials,
    )
    add = size_guarded_adder(
        phoenix_pb2.DESCRIPTOR.services_by_name["RankingService"], {"Predict": servicer.max_request_bytes}
    )
    add(servicer, server)
    finish_sync_server(server, health, [SERVICE_NAME])
    return server, port
