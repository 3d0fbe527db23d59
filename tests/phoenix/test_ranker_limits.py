"""The ranking server under hostile or excessive load (real gRPC server in process): request-size
limits (a 1M-candidate Predict refused fast without growing the process), deadline-aware shedding
with a slowed model (what cannot finish in time is refused RESOURCE_EXHAUSTED, everything accepted
completes), and ReloadModel confined to the models root with one-line errors for bad checkpoints."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch

from phoenix.ranker.checkpoint import save_model
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.handler import (
    Candidates,
    History,
    OverloadedError,
    RankingHandler,
    RankingHandlerConfig,
    ShedError,
)
from phoenix.ranker.model import RankerModel
from phoenix.ranker.servicer import max_predict_request_bytes, serve_ranking
from protos import phoenix_pb2, phoenix_pb2_grpc

TOKEN = "s3cret"
AUTH = [("authorization", f"Bearer {TOKEN}")]


def _model(seed: int) -> RankerModel:
    torch.manual_seed(seed)
    return RankerModel(RankerConfig.tiny(num_layers=1)).eval()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A models root with checkpoints a and b."""
    root = tmp_path / "models"
    save_model(root / "a", _model(0), step=1)
    save_model(root / "b", _model(1), step=2)
    return root


@pytest.fixture
def server(models: Path) -> Iterator[tuple[RankingHandler, str]]:
    """The ranking server on checkpoint a (score cache off: every request runs the model)."""
    h = RankingHandler.from_dir(models / "a", RankingHandlerConfig(cache_max_entries=0))
    srv, port = serve_ranking(h, admin_token=TOKEN)
    yield h, f"127.0.0.1:{port}"
    srv.stop(0)


def _request(n_cand: int, n_hist: int = 3, seed: int = 0) -> phoenix_pb2.PredictRequest:
    rng = np.random.default_rng(seed)
    return phoenix_pb2.PredictRequest(
        user_id=5,
        action_sequence=phoenix_pb2.ActionSequence(
            items=[
                phoenix_pb2.HistoryItem(post_id=int(p), author_id=int(p) % 1000 + 1, action_mask=2)
                for p in rng.integers(1, 10**12, n_hist)
            ]
        ),
        candidates=[
            phoenix_pb2.RankCandidate(post_id=int(p), author_id=int(p) % 997 + 1, product_surface=1)
            for p in rng.integers(1, 10**12, n_cand)
        ],
    )


def _huge_predict_bytes(n_cand: int) -> bytes:
    """A serialized PredictRequest with `n_cand` candidates, built without n_cand message objects
    (repeated fields concatenate on the wire)."""
    head = phoenix_pb2.PredictRequest(user_id=5).SerializeToString()
    one = phoenix_pb2.PredictRequest(
        candidates=[phoenix_pb2.RankCandidate(post_id=1_234_567_890_123, author_id=42, product_surface=1)]
    ).SerializeToString()
    return head + one * n_cand


def test_million_candidate_predict_is_refused_fast_without_growing_memory(
    server: tuple[RankingHandler, str], rss_mb: Callable[[], float]
) -> None:
    h, addr = server
    raw = _huge_predict_bytes(1_000_000)
    assert len(raw) > 10 << 20  # ~16 MB on the wire, under gRPC's 64 MB receive limit
    with grpc.insecure_channel(addr) as ch:
        predict = ch.unary_unary(
            "/foryou.phoenix.RankingService/Predict",
            request_serializer=None,  # raw bytes
            response_deserializer=phoenix_pb2.PredictResponse.FromString,
        )
        stub = phoenix_pb2_grpc.RankingServiceStub(ch)
        stub.Predict(_request(5), timeout=10)  # channel and server warm
        rss0 = rss_mb()
        t0 = time.monotonic()
        for _ in range(3):  # repeated: nothing accumulates either
            with pytest.raises(grpc.RpcError) as e:
                predict(raw, timeout=30)
            code, details = e.value.code(), e.value.details() or ""
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                # the server's receive limit (when configured to match) refuses it even earlier
                assert "larger than max" in details
            else:
                assert code == grpc.StatusCode.INVALID_ARGUMENT, details
                assert "at most" in details and "candidates" in details
        seconds = time.monotonic() - t0
        grown = rss_mb() - rss0
        print(f"3 x 1M-candidate Predict refused in {seconds:.2f} s, RSS +{grown:.0f} MB")
        assert seconds < 10  # was 30-45 s per request before the limits
        assert grown < 200  # was +5.2 GB; three 16 MB buffers at most
        # the server still serves, with the same model
        resp = stub.Predict(_request(5), timeout=10)
        assert len(resp.predictions) == 5 and resp.model_version == h.model_version


def test_counts_over_the_limits_are_invalid_argument(server: tuple[RankingHandler, str]) -> None:
    h, addr = server
    c = h.config
    with grpc.insecure_channel(addr) as ch:
        stub = phoenix_pb2_grpc.RankingServiceStub(ch)
        resp = stub.Predict(_request(c.max_candidates, c.max_history), timeout=30)  # at the limits: fine
        assert len(resp.predictions) == c.max_candidates
        for req, needle in (
            (_request(c.max_candidates + 1), "4,001 candidates; at most 4,000"),
            (_request(3, c.max_history + 1), "513 items; at most 512"),
        ):
            with pytest.raises(grpc.RpcError) as e:
                stub.Predict(req, timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert needle in (e.value.details() or "")


def test_out_of_range_product_surface_is_invalid_argument(server: tuple[RankingHandler, str]) -> None:
    """A product_surface outside the surface vocabulary [0, 16) (on a candidate or a history item)
    is refused with a message naming it; every value inside is scored."""
    h, addr = server
    with grpc.insecure_channel(addr) as ch:
        stub = phoenix_pb2_grpc.RankingServiceStub(ch)
        for surface, where in ((99, "candidates"), (-1, "candidates"), (16, "candidates"), (16, "items")):
            req = _request(3)
            target = req.candidates[1] if where == "candidates" else req.action_sequence.items[1]
            target.product_surface = surface
            with pytest.raises(grpc.RpcError) as e:
                stub.Predict(req, timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"1: product_surface {surface} is out of range [0, 16)" in (e.value.details() or "")
        req = _request(16)
        for i, c in enumerate(req.candidates):
            c.product_surface = i  # type: ignore[assignment]
        assert len(stub.Predict(req, timeout=10).predictions) == 16


def test_byte_limit_admits_every_valid_request(widest_history_item: phoenix_pb2.HistoryItem) -> None:
    """The unparsed-size guard is the worst-case encoding of a request at the count limits: the
    largest valid request (every id a 10-byte varint) passes it."""
    c = RankingHandlerConfig()
    worst = phoenix_pb2.PredictRequest(
        user_id=-1,
        action_sequence=phoenix_pb2.ActionSequence(items=[widest_history_item] * c.max_history),
        candidates=[phoenix_pb2.RankCandidate(post_id=-1, author_id=-1, product_surface=-1)]
        * c.max_candidates,
    )
    limit = max_predict_request_bytes(c.max_candidates, c.max_history)
    assert worst.ByteSize() <= limit < 1 << 20  # ~235 KB: also the server's receive limit to set
    assert len(_huge_predict_bytes(20_000)) > limit  # typical ids: 13 bytes a candidate


def test_overload_sheds_requests_that_cannot_meet_their_deadline(
    server: tuple[RankingHandler, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each forward takes >= 50 ms (slowed); 20 clients at once with an 800 ms deadline (1 s of
    work): the server accepts what it can finish in time and refuses the rest at once; no accepted
    call runs past its deadline and refused calls never reach the model."""
    h, addr = server
    model = h._loaded.model
    real = model.score_candidates
    calls = {"n": 0}

    def slow(*a: Any, **kw: Any) -> Any:
        calls["n"] += 1
        time.sleep(0.05)
        return real(*a, **kw)

    monkeypatch.setattr(model, "score_candidates", slow)
    with grpc.insecure_channel(addr) as ch:
        stub = phoenix_pb2_grpc.RankingServiceStub(ch)
        for i in range(4):  # the server measures its per-candidate cost
            stub.Predict(_request(7, seed=i), timeout=10)
        calls["n"] = 0
        n = 20
        barrier = threading.Barrier(n)
        results: list[tuple[grpc.StatusCode, float]] = [(grpc.StatusCode.UNKNOWN, 0.0)] * n

        def client(i: int) -> None:
            req = _request(7, seed=100 + i)
            barrier.wait()
            t0 = time.monotonic()
            try:
                stub.Predict(req, timeout=0.8)
                results[i] = (grpc.StatusCode.OK, time.monotonic() - t0)
            except grpc.RpcError as e:
                results[i] = (e.code(), time.monotonic() - t0)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    codes = [c for c, _ in results]
    ok = codes.count(grpc.StatusCode.OK)
    shed = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    print(
        f"{ok} accepted (max {max(s for c, s in results if c == grpc.StatusCode.OK):.3f} s), {shed} shed "
        f"(max {max((s for c, s in results if c != grpc.StatusCode.OK), default=0):.3f} s)"
    )
    assert grpc.StatusCode.DEADLINE_EXCEEDED not in codes, codes
    assert ok + shed == n, codes
    assert ok >= 1 and shed >= 1, codes
    assert calls["n"] == ok  # a refused request did no model work


def test_reload_only_from_the_models_root(
    server: tuple[RankingHandler, str], models: Path, tmp_path: Path
) -> None:
    h, addr = server
    outside = tmp_path / "elsewhere"
    save_model(outside, _model(2), step=3)
    os.symlink(outside, models / "link")  # a link inside the root to a checkpoint outside it
    truncated = models / "truncated"
    shutil.copytree(models / "b", truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (models / "badjson").mkdir()
    (models / "badjson" / "config.json").write_text('{"format": ')
    hist = _request(9)
    with grpc.insecure_channel(addr) as ch:
        stub = phoenix_pb2_grpc.RankingServiceStub(ch)
        before = stub.Predict(hist, timeout=10)
        v0 = before.model_version

        def reload(path: str) -> grpc.RpcError:
            with pytest.raises(grpc.RpcError) as e:
                stub.ReloadModel(phoenix_pb2.ReloadModelRequest(path=path), timeout=10, metadata=AUTH)
            return e.value

        for path in (
            str(outside),
            str(models / "link"),
            "../elsewhere",
            str(models / ".." / "elsewhere"),
            "/",
        ):
            e = reload(path)
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED, path
            assert "outside the models root" in (e.details() or "")
        for path in (str(truncated), "badjson", "missing"):
            e = reload(path)
            details = e.details() or ""
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, (path, details)
            assert "\n" not in details and "Traceback" not in details and len(details) < 500
        # the old model is still the one serving, with the same scores
        after = stub.Predict(hist, timeout=10)
        assert after.model_version == v0 == h.model_version
        assert [list(p.action_probs) for p in after.predictions] == [
            list(p.action_probs) for p in before.predictions
        ]
        # a checkpoint inside the root, by a path relative to it
        r = stub.ReloadModel(phoenix_pb2.ReloadModelRequest(path="b"), timeout=10, metadata=AUTH)
        assert r.model_version != v0 and stub.Predict(hist, timeout=10).model_version == r.model_version


def test_configured_models_root_and_no_root(models: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-root"
    save_model(other / "c", _model(3), step=4)
    h = RankingHandler.from_dir(models / "a", RankingHandlerConfig(models_root=str(other)))
    with pytest.raises(PermissionError, match="outside the models root"):
        h.reload(models / "b")  # the start directory's siblings are no longer allowed
    assert h.reload(other / "c").startswith("ranker-4-")
    bare = RankingHandler(_model(0), "v0")  # built from a model object, no root configured
    with pytest.raises(PermissionError, match="no models root"):
        bare.reload(models / "b")


def test_queue_bound_and_no_deadline_backlog(models: Path) -> None:
    """Beyond max_in_flight + max_queue a request is refused at once, not parked on a thread; a
    request without a deadline is refused when more than queue_timeout_s of work is ahead."""
    cfg = RankingHandlerConfig(max_in_flight=1, max_queue=0, cache_max_entries=0, queue_timeout_s=5.0)
    h = RankingHandler.from_dir(models / "a", cfg)
    hist, cand = History.empty(), Candidates(np.arange(1, 8), np.arange(1, 8), np.ones(7, np.int64))
    assert h._slots.acquire(blocking=False)  # the only slot is busy
    try:
        t0 = time.monotonic()
        with pytest.raises(OverloadedError, match="1 ranking requests in flight and 0 queued"):
            h.predict(1, hist, cand)
        assert time.monotonic() - t0 < 1.0  # not the 5 s queue timeout
    finally:
        h._slots.release()
    ticket = h.backlog.admit(6.0, 6.0, None, 10.0)  # 6 s of accepted work ahead
    try:
        with pytest.raises(ShedError, match="without a deadline"):
            h.predict(1, hist, cand)
        with pytest.raises(ShedError, match="cannot finish before the deadline"):
            h.predict(1, hist, cand, deadline=time.monotonic() + 3.0)
    finally:
        h.backlog.finish(ticket)
    assert h.predict(1, hist, cand)[0].shape == (7, 64)
