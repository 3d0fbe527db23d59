"""RankingHandler (cache, limits, deadlines, reload) and the gRPC RankingService."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY

from phoenix.ranker.checkpoint import save_model
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.features import CandidateArrays, HistoryArrays, build_batch
from phoenix.ranker.handler import (
    Candidates,
    DeadlineExceededError,
    History,
    OverloadedError,
    RankingHandler,
    RankingHandlerConfig,
    ShedError,
)
from phoenix.ranker.model import RankerModel
from phoenix.ranker.servicer import serve_ranking
from protos import phoenix_pb2, phoenix_pb2_grpc


def _model(seed: int) -> RankerModel:
    torch.manual_seed(seed)
    m = RankerModel(RankerConfig.tiny(num_layers=1)).eval()
    with torch.no_grad():
        m.action_head.weight.normal_(std=0.5)
        m.continuous_head.weight.normal_(std=0.5)
    return m


def _request(n_hist: int = 5, n_cand: int = 7, seed: int = 0) -> tuple[History, Candidates]:
    rng = np.random.default_rng(seed)
    h = History(
        post_ids=rng.integers(1, 10**12, n_hist),
        author_ids=rng.integers(1, 10**6, n_hist),
        action_masks=rng.integers(0, 2**14, n_hist).astype(np.uint64),
        surfaces=rng.integers(0, 16, n_hist),
        dwell_ms=rng.integers(0, 40_000, n_hist),
    )
    c = Candidates(
        rng.integers(1, 10**12, n_cand), rng.integers(1, 10**6, n_cand), rng.integers(0, 16, n_cand)
    )
    return h, c


def _reference(model: RankerModel, user_id: int, h: History, c: Candidates) -> np.ndarray:
    hist = HistoryArrays.single(
        user_id, h.post_ids, h.author_ids, h.action_masks, h.surfaces, h.dwell_ms, model.cfg.history_len
    )
    cand = CandidateArrays(c.post_ids[None], c.author_ids[None], c.surfaces[None])
    with torch.inference_mode():
        logits, _ = model(build_batch(model.cfg.hash_config, hist, cand))
    return torch.sigmoid(logits[0]).numpy()


@pytest.fixture
def ckpts(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    save_model(a, _model(0), step=1)
    save_model(b, _model(1), step=2)
    return a, b


def test_handler_matches_model_and_caches(ckpts: tuple[Path, Path]) -> None:
    h = RankingHandler.from_dir(ckpts[0], RankingHandlerConfig(candidate_batch=3))
    hist, cand = _request(n_hist=40)  # longer than history_len 16: the most recent 16 are used
    probs, cont = h.predict(7, hist, cand)
    assert probs.shape == (7, 64) and cont.shape == (7, 8) and probs.dtype == np.float32
    ref = _reference(h._loaded.model, 7, hist, cand)
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    assert (cont[:, 1] >= 0).all() and (cont[:, 1] <= 30).all()  # dwell seconds head
    assert h.cache.misses == 7 and h.cache.hits == 0
    probs2, _ = h.predict(
        7, hist, Candidates(cand.post_ids[::-1], cand.author_ids[::-1], cand.surfaces[::-1])
    )
    assert h.cache.hits == 7
    np.testing.assert_array_equal(probs2, probs[::-1])
    # a different history is a different cache key
    hist2, _ = _request(n_hist=40, seed=9)
    h.predict(7, hist2, cand)
    assert h.cache.hits == 7


def test_handler_validation_overload_deadline(ckpts: tuple[Path, Path]) -> None:
    cfg = RankingHandlerConfig(max_in_flight=1, cache_max_entries=0, queue_timeout_s=0.0)
    h = RankingHandler.from_dir(ckpts[0], cfg)
    hist, cand = _request()
    with pytest.raises(ValueError):
        h.predict(1, hist, Candidates(cand.post_ids, cand.author_ids[:2], cand.surfaces))
    with pytest.raises(DeadlineExceededError):
        h.predict(1, hist, cand, deadline=time.monotonic() - 1)
    assert h._slots.acquire(blocking=False)  # occupy the only slot
    try:
        with pytest.raises(OverloadedError):
            h.predict(1, hist, cand)
    finally:
        h._slots.release()
    probs, _ = h.predict(1, History.empty(), cand)  # empty history is fine
    assert np.isfinite(probs).all()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_admission_queue_waits_for_a_slot_then_refuses(ckpts: tuple[Path, Path]) -> None:
    cfg = RankingHandlerConfig(max_in_flight=1, cache_max_entries=0, queue_timeout_s=30.0)
    h = RankingHandler.from_dir(ckpts[0], cfg)
    hist, cand = _request()
    assert h._slots.acquire(blocking=False)  # the only slot is busy ...
    threading.Timer(0.2, h._slots.release).start()  # ... until another request finishes
    probs, _ = h.predict(1, hist, cand)  # queued, then admitted: no RESOURCE_EXHAUSTED
    assert np.isfinite(probs).all()
    # while the slot stays busy, the request's own deadline ends the wait, not the queue timeout:
    # it gives up as soon as it could no longer finish in time, answered RESOURCE_EXHAUSTED (shed)
    # rather than failing at its deadline
    assert h._slots.acquire(blocking=False)
    try:
        before = _metric("phoenix_ranker_rejected_total", reason="shed")
        deadline = time.monotonic() + 0.05
        with pytest.raises(ShedError, match="in time to finish before the deadline"):
            h.predict(1, hist, cand, deadline=deadline)
        assert time.monotonic() < deadline
        assert _metric("phoenix_ranker_rejected_total", reason="shed") == before + 1
        h.config.queue_timeout_s = 0.05
        before = _metric("phoenix_ranker_rejected_total", reason="overloaded")
        with pytest.raises(OverloadedError, match="no slot freed"):
            h.predict(1, hist, cand)
        assert _metric("phoenix_ranker_rejected_total", reason="overloaded") == before + 1
    finally:
        h._slots.release()


def test_metrics_count_requests_candidates_cache_and_reloads(ckpts: tuple[Path, Path]) -> None:
    h = RankingHandler.from_dir(ckpts[0])
    hist, cand = _request(n_cand=7, seed=3)
    before = {
        "req": _metric("phoenix_ranker_predict_seconds_count"),
        "cands": _metric("phoenix_ranker_candidates_sum"),
        "hit": _metric("phoenix_ranker_score_cache_total", result="hit"),
        "miss": _metric("phoenix_ranker_score_cache_total", result="miss"),
        "invalid": _metric("phoenix_ranker_rejected_total", reason="invalid"),
        "ok": _metric("phoenix_ranker_reloads_total", outcome="ok"),
        "failed": _metric("phoenix_ranker_reloads_total", outcome="failed"),
    }
    h.predict(2, hist, cand)
    h.predict(2, hist, cand)  # all 7 from the cache
    with pytest.raises(ValueError):
        h.predict(2, hist, Candidates(cand.post_ids, cand.author_ids[:1], cand.surfaces))
    assert _metric("phoenix_ranker_predict_seconds_count") == before["req"] + 2
    assert _metric("phoenix_ranker_candidates_sum") == before["cands"] + 14
    assert _metric("phoenix_ranker_score_cache_total", result="miss") == before["miss"] + 7
    assert _metric("phoenix_ranker_score_cache_total", result="hit") == before["hit"] + 7
    assert _metric("phoenix_ranker_rejected_total", reason="invalid") == before["invalid"] + 1
    assert _metric("phoenix_ranker_in_flight") == 0
    version = h.reload(ckpts[1])
    with pytest.raises(FileNotFoundError):
        h.reload(ckpts[1].parent / "missing")
    assert _metric("phoenix_ranker_reloads_total", outcome="ok") == before["ok"] + 1
    assert _metric("phoenix_ranker_reloads_total", outcome="failed") == before["failed"] + 1
    assert _metric("phoenix_ranker_model_info", model_version=version) == 1.0


def test_reload_swaps_model_without_failing_in_flight(ckpts: tuple[Path, Path]) -> None:
    h = RankingHandler.from_dir(ckpts[0], RankingHandlerConfig(max_in_flight=16, cache_max_entries=0))
    v0 = h.model_version
    hist, cand = _request(n_cand=50)
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                p, _ = h.predict(3, hist, cand)
                assert np.isfinite(p).all()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(4):
        h.reload(ckpts[(i + 1) % 2])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert h.model_version == v0  # 4 swaps: back on checkpoint a
    h.reload(ckpts[1])
    assert h.model_version != v0
    np.testing.assert_allclose(h.predict(3, hist, cand)[0], _reference(_model(1), 3, hist, cand), atol=1e-5)


@pytest.fixture
def server(ckpts: tuple[Path, Path]):
    h = RankingHandler.from_dir(ckpts[0])
    srv, port = serve_ranking(h, admin_token="s3cret")
    yield h, f"127.0.0.1:{port}"
    srv.stop(0)


def _proto_request(hist: History, cand: Candidates, user_id: int = 5) -> phoenix_pb2.PredictRequest:
    seq = phoenix_pb2.ActionSequence(
        items=[
            phoenix_pb2.HistoryItem(
                post_id=int(p), author_id=int(a), action_mask=int(m), product_surface=int(s), dwell_ms=int(d)
            )
            for p, a, m, s, d in zip(
                hist.post_ids, hist.author_ids, hist.action_masks, hist.surfaces, hist.dwell_ms, strict=True
            )
        ]
    )
    return phoenix_pb2.PredictRequest(
        user_id=user_id,
        action_sequence=seq,
        candidates=[
            phoenix_pb2.RankCandidate(post_id=int(p), author_id=int(a), product_surface=int(s))
            for p, a, s in zip(cand.post_ids, cand.author_ids, cand.surfaces, strict=True)
        ],
    )


def test_predict_over_grpc(server, ckpts: tuple[Path, Path]) -> None:
    h, addr = server
    hist, cand = _request(n_cand=9)
    hist.surfaces = np.array([1, 10, 15, 2, 1])  # valid ProductSurface enum values on the wire
    cand.surfaces = np.array([1] * 5 + [10] * 4)
    with grpc.insecure_channel(addr) as ch:
        stub = phoenix_pb2_grpc.RankingServiceStub(ch)
        resp = stub.Predict(_proto_request(hist, cand), timeout=10)
        assert resp.model_version == h.model_version
        assert [p.post_id for p in resp.predictions] == cand.post_ids.tolist()
        probs = np.array([p.action_probs for p in resp.predictions])
        assert probs.shape == (9, 64) and len(resp.predictions[0].continuous) == 8
        np.testing.assert_allclose(probs, _reference(h._loaded.model, 5, hist, cand), atol=1e-5)

        bad = _proto_request(hist, cand)
        bad.candidates[0].post_id = 0
        with pytest.raises(grpc.RpcError) as e:
            stub.Predict(bad, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        req = phoenix_pb2.ReloadModelRequest(path=str(ckpts[1]))
        with pytest.raises(grpc.RpcError) as e:
            stub.ReloadModel(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:
            stub.ReloadModel(req, timeout=10, metadata=[("authorization", "Bearer wrong")])
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as e:  # outside the models root (the checkpoints' folder)
            stub.ReloadModel(
                phoenix_pb2.ReloadModelRequest(path="/nonexistent"),
                timeout=10,
                metadata=[("authorization", "Bearer s3cret")],
            )
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as e:  # inside it, but no checkpoint there
            stub.ReloadModel(
                phoenix_pb2.ReloadModelRequest(path=str(ckpts[0].parent / "missing")),
                timeout=10,
                metadata=[("authorization", "Bearer s3cret")],
            )
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        old = h.model_version
        r = stub.ReloadModel(req, timeout=10, metadata=[("authorization", "Bearer s3cret")])
        assert r.model_version == h.model_version != old
        resp2 = stub.Predict(_proto_request(hist, cand), timeout=10)
        assert resp2.model_version == r.model_version
