"""The retrieval server under hostile or excessive load (real grpc.aio server in process, no
Kafka): oversized history / exclusions refused INVALID_ARGUMENT (a 1M-item history unparsed,
without growing the process), deadline-aware shedding with a slowed user tower, and ReloadModel
confined to the models root with one-line errors while the old model keeps serving."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch

from foryou.core.grpc_server import GrpcServer
from foryou.core.snowflake import make_id
from phoenix.retrieval.handler import RetrievalHandler, RetrievalHandlerConfig
from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, save_two_tower
from phoenix.retrieval.servicer import (
    SERVICE_NAME,
    RetrievalServicer,
    add_retrieval_service,
    max_retrieve_request_bytes,
)
from protos import phoenix_pb2, phoenix_pb2_grpc

NOW_MS = 1_760_000_000_000
VIEWER = 11
TOKEN = "t"
AUTH = [("authorization", f"Bearer {TOKEN}")]


class SlowHandler(RetrievalHandler):
    """The user tower takes `delay_s` longer; counts user-tower runs."""

    delay_s = 0.0
    towers = 0

    def user_vector(self, *a: Any) -> np.ndarray:
        self.towers += 1
        time.sleep(self.delay_s)
        return super().user_vector(*a)


def _checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    save_two_tower(path, TwoTowerModel(TwoTowerConfig.tiny()), step=seed)
    return path


def _handler(models: Path, **cfg: Any) -> SlowHandler:
    h = SlowHandler.from_dir(_checkpoint(models / "a", 0), config=RetrievalHandlerConfig(**cfg))
    ids = np.array([make_id(NOW_MS + i) for i in range(60)], dtype=np.int64)
    h.add_posts(ids, 100 + np.arange(60) % 9)
    assert isinstance(h, SlowHandler)
    return h


async def _serve(handler: RetrievalHandler) -> GrpcServer:
    server = GrpcServer("127.0.0.1:0", 64)
    server.add(add_retrieval_service, RetrievalServicer(handler, TOKEN), SERVICE_NAME)
    await server.start()
    return server


def _hist(n: int) -> phoenix_pb2.ActionSequence:
    return phoenix_pb2.ActionSequence(
        items=[
            phoenix_pb2.HistoryItem(post_id=make_id(NOW_MS + i % 60), author_id=100, action_mask=2)
            for i in range(n)
        ]
    )


def test_oversized_history_and_exclusions_are_invalid_argument(
    tmp_path: Path, rss_mb: Callable[[], float]
) -> None:
    h = _handler(tmp_path / "models")
    c = h.config
    # a 1M-item history on the wire, built without 1M message objects
    item = _hist(1).items[0].SerializeToString()
    body = (b"\x0a" + _varint(len(item)) + item) * 1_000_000  # ActionSequence.items, repeated
    huge = (
        phoenix_pb2.RetrieveRequest(user_id=VIEWER).SerializeToString() + b"\x12" + _varint(len(body)) + body
    )
    assert len(huge) > 10 << 20

    async def run() -> None:
        server = await _serve(h)
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = phoenix_pb2_grpc.RetrievalServiceStub(ch)
                ok = await stub.Retrieve(
                    phoenix_pb2.RetrieveRequest(
                        user_id=VIEWER,
                        top_k=c.max_top_k,
                        action_sequence=_hist(c.max_history),
                        exclude_post_ids=range(1, c.max_exclusions + 1),
                    ),
                    timeout=10,
                )  # at every limit: served
                assert len(ok.candidates) == 60 and ok.model_version == h.model_version
                for req, needle in (
                    (
                        phoenix_pb2.RetrieveRequest(user_id=VIEWER, action_sequence=_hist(c.max_history + 1)),
                        "action_sequence items: 513 exceeds the maximum 512",
                    ),
                    (
                        phoenix_pb2.RetrieveRequest(
                            user_id=VIEWER, exclude_post_ids=range(1, c.max_exclusions + 2)
                        ),
                        "exclude_post_ids: 10,001 exceeds the maximum 10,000",
                    ),
                    (phoenix_pb2.RetrieveRequest(user_id=VIEWER, top_k=c.max_top_k + 1), "top_k"),
                    (
                        phoenix_pb2.RetrieveRequest(user_id=VIEWER, exclude_post_ids=range(1, 200_000)),
                        "at most",  # over the byte limit: refused unparsed
                    ),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as e:
                        await stub.Retrieve(req, timeout=10)
                    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                    assert needle in (e.value.details() or ""), e.value.details()
                raw = ch.unary_unary(
                    "/foryou.phoenix.RetrievalService/Retrieve",
                    request_serializer=None,
                    response_deserializer=phoenix_pb2.RetrieveResponse.FromString,
                )
                rss0 = rss_mb()
                t0 = time.monotonic()
                for _ in range(3):
                    with pytest.raises(grpc.aio.AioRpcError) as e:
                        await raw(huge, timeout=30)
                    code, details = e.value.code(), e.value.details() or ""
                    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # a server receive limit set to match
                        assert "larger than max" in details
                    else:
                        assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most" in details, details
                grown, seconds = rss_mb() - rss0, time.monotonic() - t0
                print(f"3 x 1M-item-history Retrieve refused in {seconds:.2f} s, RSS +{grown:.0f} MB")
                assert grown < 200
                assert h.towers == 1  # only the valid request reached the model
        finally:
            await server.stop(grace_s=0.5)

    asyncio.run(run())


def test_out_of_range_product_surface_is_invalid_argument(tmp_path: Path) -> None:
    """A history item whose product_surface is outside the surface vocabulary [0, 16) is refused
    with a message naming it, before the user tower runs."""
    h = _handler(tmp_path / "models")

    async def run() -> None:
        server = await _serve(h)
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = phoenix_pb2_grpc.RetrievalServiceStub(ch)
                for surface in (99, -3, 16):
                    hist = _hist(4)
                    hist.items[2].product_surface = surface
                    with pytest.raises(grpc.aio.AioRpcError) as e:
                        await stub.Retrieve(
                            phoenix_pb2.RetrieveRequest(user_id=VIEWER, action_sequence=hist), timeout=10
                        )
                    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                    assert f"item 2: product_surface {surface} is out of range [0, 16)" in (
                        e.value.details() or ""
                    )
                assert h.towers == 0
                hist = _hist(16)
                for i, item in enumerate(hist.items):
                    item.product_surface = i  # type: ignore[assignment]
                ok = await stub.Retrieve(
                    phoenix_pb2.RetrieveRequest(user_id=VIEWER, action_sequence=hist), timeout=10
                )
                assert len(ok.candidates) == 60
        finally:
            await server.stop(grace_s=0.5)

    asyncio.run(run())


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_byte_limit_admits_every_valid_request(widest_history_item: phoenix_pb2.HistoryItem) -> None:
    c = RetrievalHandlerConfig()
    worst = phoenix_pb2.RetrieveRequest(
        user_id=-1,
        top_k=2**32 - 1,
        action_sequence=phoenix_pb2.ActionSequence(items=[widest_history_item] * c.max_history),
        exclude_post_ids=[-1] * c.max_exclusions,
    )
    assert worst.ByteSize() <= max_retrieve_request_bytes(c.max_history, c.max_exclusions) < 1 << 20


def test_overload_sheds_requests_that_cannot_meet_their_deadline(tmp_path: Path) -> None:
    """Each retrieval takes >= 50 ms (slowed user tower), 2 at a time; 30 clients at once with a
    500 ms deadline (750 ms of work): what can finish in time is served, the rest refused at once,
    none fails on its deadline and refused calls never reach the model."""
    h = _handler(tmp_path / "models", max_in_flight=2)
    h.delay_s = 0.05

    async def run() -> list[tuple[grpc.StatusCode, float]]:
        server = await _serve(h)
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = phoenix_pb2_grpc.RetrievalServiceStub(ch)
                req = phoenix_pb2.RetrieveRequest(user_id=VIEWER, top_k=10, action_sequence=_hist(3))
                for _ in range(4):  # the server measures its cost per request
                    await stub.Retrieve(req, timeout=10)
                h.towers = 0

                async def client() -> tuple[grpc.StatusCode, float]:
                    t0 = time.monotonic()
                    try:
                        await stub.Retrieve(req, timeout=0.5)
                        return grpc.StatusCode.OK, time.monotonic() - t0
                    except grpc.aio.AioRpcError as e:
                        return e.code(), time.monotonic() - t0

                return await asyncio.gather(*[client() for _ in range(30)])
        finally:
            await server.stop(grace_s=0.5)

    results = asyncio.run(run())
    codes = [c for c, _ in results]
    ok, shed = codes.count(grpc.StatusCode.OK), codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    print(
        f"{ok} accepted (max {max(s for c, s in results if c == grpc.StatusCode.OK):.3f} s), {shed} shed "
        f"(max {max((s for c, s in results if c != grpc.StatusCode.OK), default=0):.3f} s)"
    )
    assert grpc.StatusCode.DEADLINE_EXCEEDED not in codes, codes
    assert ok + shed == len(codes), codes
    assert ok >= 2 and shed >= 1, codes
    assert h.towers == ok  # a refused request did no model work
    assert len(h.backlog) == 0  # every accepted request left the backlog


def test_reload_only_from_the_models_root(tmp_path: Path) -> None:
    models = tmp_path / "models"
    h = _handler(models)
    _checkpoint(models / "b", 1)
    outside = _checkpoint(tmp_path / "elsewhere", 2)
    os.symlink(outside, models / "link")
    truncated = models / "truncated"
    shutil.copytree(models / "b", truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    async def run() -> None:
        server = await _serve(h)
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = phoenix_pb2_grpc.RetrievalServiceStub(ch)
                req = phoenix_pb2.RetrieveRequest(user_id=VIEWER, top_k=20, action_sequence=_hist(3))
                before = await stub.Retrieve(req, timeout=10)

                async def reload(path: str) -> grpc.aio.AioRpcError:
                    with pytest.raises(grpc.aio.AioRpcError) as e:
                        await stub.ReloadModel(
                            phoenix_pb2.ReloadModelRequest(path=path), timeout=10, metadata=AUTH
                        )
                    return e.value

                for path in (str(outside), str(models / "link"), "../elsewhere", "/"):
                    e = await reload(path)
                    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, path
                    assert "outside the models root" in (e.details() or "")
                for path in (str(truncated), "missing"):
                    e = await reload(path)
                    details = e.details() or ""
                    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, (path, details)
                    assert "\n" not in details and "Traceback" not in details and len(details) < 500
                after = await stub.Retrieve(req, timeout=10)  # the old model and index still serve
                assert after == before and after.model_version == h.model_version
                r = await stub.ReloadModel(
                    phoenix_pb2.ReloadModelRequest(path="b"), timeout=30, metadata=AUTH
                )
                assert r.model_version != before.model_version
                assert (await stub.Retrieve(req, timeout=10)).model_version == r.model_version
        finally:
            await server.stop(grace_s=0.5)

    asyncio.run(run())
