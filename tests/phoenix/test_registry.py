"""Model registry: versions + manifests, atomic promote / rollback, concurrent readers and writers,
and a running RankingService following promotions through RegistryFollower."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from phoenix.ranker.checkpoint import save_model
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.handler import RankingHandler, RankingHandlerConfig
from phoenix.ranker.model import RankerModel
from phoenix.ranker.servicer import candidates_from_proto, history_from_proto, serve_ranking
from phoenix.registry import Registry, RegistryError, RegistryFollower, follow_promoted
from phoenix.registry.store import HISTORY_FILE, PROMOTED_FILE
from protos import phoenix_pb2, phoenix_pb2_grpc


def _fake_checkpoint(d: Path, tag: str, fmt: str = "phoenix-ranker/1") -> Path:
    """The registry reads only config.json (format, model_version) and copies the files."""
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"format": fmt, "model_version": f"mv-{tag}"}))
    (d / "model.safetensors").write_bytes(tag.encode() * 100)
    (d / "optimizer.safetensors").write_bytes(b"resume only")
    (d / "train_state.json").write_text("{}")
    (d / "training_curves.png").write_bytes(b"png")
    return d


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


def _register(reg: Registry, tmp_path: Path, tag: str, **kw: object) -> str:
    return reg.register("ranker", _fake_checkpoint(tmp_path / f"ckpt-{tag}", tag), **kw)


def test_register_list_show(reg: Registry, tmp_path: Path) -> None:
    assert reg.list("ranker") == [] and reg.promoted("ranker") is None
    v1 = _register(reg, tmp_path, "a", metrics={"auc": {"SERVER_TWEET_FAV": 0.6}}, data_window={"logs": "x"})
    v2 = _register(reg, tmp_path, "b", parent=v1)
    assert (v1, v2) == ("ranker-0001", "ranker-0002")
    m = reg.show(v2)
    assert m["kind"] == "ranker" and m["version"] == v2 and m["model_version"] == "mv-b"
    assert m["parent"] == v1 and m["promoted"] is False and m["created_at_ms"] > 0
    assert reg.show(v1)["metrics"] == {"auc": {"SERVER_TWEET_FAV": 0.6}}
    assert reg.show(v1)["data_window"] == {"logs": "x"}
    d = Path(m["path"])
    # serving files copied, resume-only training state left out, digests recorded
    assert sorted(p.name for p in d.iterdir()) == [
        "config.json",
        "model.safetensors",
        "training_curves.png",
        "version.json",
    ]
    digest = hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
    assert m["files"]["model.safetensors"]["sha256"] == digest
    assert [x["version"] for x in reg.list("ranker")] == [v1, v2]
    assert reg.list("retrieval") == []


def test_register_rejects_bad_input(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not a checkpoint"):
        reg.register("ranker", tmp_path)
    retrieval = _fake_checkpoint(tmp_path / "r", "r", fmt="phoenix-retrieval/1")
    with pytest.raises(RegistryError, match="not a ranker"):
        reg.register("ranker", retrieval)
    assert reg.register("retrieval", retrieval) == "retrieval-0001"
    with pytest.raises(RegistryError, match="unknown model kind"):
        reg.register("../etc", retrieval)
    with pytest.raises(RegistryError, match="no version"):
        _register(reg, tmp_path, "a", parent="ranker-0042")
    with pytest.raises(RegistryError, match="no version"):
        reg.show("ranker-0042")
    with pytest.raises(RegistryError, match="not a registry version"):
        reg.show("latest")
    assert not any(p.name.startswith(".staging") for p in (reg.root / "ranker").iterdir())


def test_promote_and_rollback(reg: Registry, tmp_path: Path) -> None:
    v1, v2, v3 = (_register(reg, tmp_path, t) for t in "abc")
    with pytest.raises(RegistryError, match="no earlier promotion"):
        reg.rollback("ranker")
    assert reg.promote("ranker", v1) is None
    assert reg.promote("ranker", v2) == v1
    assert reg.promote("ranker", v3) == v2
    assert reg.promoted("ranker") == v3 and reg.promoted_path("ranker") == reg.path(v3)
    assert reg.show(v3)["promoted"] and not reg.show(v2)["promoted"]
    assert reg.pointer("ranker")["model_version"] == "mv-c"
    assert reg.rollback("ranker") == v2  # the one promoted before
    assert reg.rollback("ranker") == v1
    with pytest.raises(RegistryError, match="no earlier promotion"):
        reg.rollback("ranker")
    assert reg.promoted("ranker") == v1
    # re-promoting what is promoted is a no-op (no pointer write, no history line)
    assert reg.promote("ranker", v1) == v1
    hist = reg.history("ranker")
    assert [(h["action"], h["version"], h["previous"]) for h in hist] == [
        ("promote", v1, None),
        ("promote", v2, v1),
        ("promote", v3, v2),
        ("rollback", v2, v3),
        ("rollback", v1, v2),
    ]
    assert len((reg.root / "ranker" / HISTORY_FILE).read_text().splitlines()) == 5
    # compare-and-swap: a retrain promotes only over the version it compared against
    with pytest.raises(RegistryError, match="expected"):
        reg.promote("ranker", v3, expect=v2)
    assert reg.promote("ranker", v3, expect=v1) == v1
    with pytest.raises(RegistryError, match="not a retrieval"):
        reg.promote("retrieval", v3)
    with pytest.raises(RegistryError, match="no version"):
        reg.promote("ranker", "ranker-0099")


def test_concurrent_readers_never_see_a_partial_pointer(reg: Registry, tmp_path: Path) -> None:
    versions = [_register(reg, tmp_path, t) for t in "abcd"]
    reg.promote("ranker", versions[0])
    pointer = reg.root / "ranker" / PROMOTED_FILE
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                raw = json.loads(pointer.read_text())  # what any other process would read
                assert raw["version"] in versions and all(v in versions for v in raw["previous"])
                assert reg.promoted("ranker") in versions
                reads[0] += 1
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    rng = np.random.default_rng(0)
    for i in range(300):
        if i % 3 == 2 and reg.pointer("ranker")["previous"]:
            reg.rollback("ranker")
        else:
            reg.promote("ranker", versions[int(rng.integers(len(versions)))])
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert reads[0] > 100
    assert not [p for p in pointer.parent.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_writers_get_distinct_versions(reg: Registry, tmp_path: Path) -> None:
    ckpt = _fake_checkpoint(tmp_path / "ckpt", "x")
    out: list[str] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(5):
            v = reg.register("ranker", ckpt)
            with lock:
                out.append(v)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out) == [f"ranker-{i:04d}" for i in range(1, 16)]
    assert len(reg.list("ranker")) == 15


def test_follower_calls_back_on_promotion_only(reg: Registry, tmp_path: Path) -> None:
    v1, v2 = _register(reg, tmp_path, "a"), _register(reg, tmp_path, "b")
    calls: list[tuple[Path, str]] = []
    fail = [False]

    def on_change(path: Path, version: str) -> None:
        if fail[0]:
            raise ValueError("unloadable")
        calls.append((path, version))

    f = RegistryFollower(reg, "ranker", on_change, interval_s=3600)
    assert not f.check()  # nothing promoted yet
    reg.promote("ranker", v1)
    assert f.check() and calls == [(reg.path(v1), v1)] and f.version == v1
    assert not f.check()  # unchanged pointer: one stat, no callback
    fail[0] = True
    reg.promote("ranker", v2)
    assert not f.check() and f.errors == 1 and f.version == v1  # keeps serving v1
    assert not f.check() and f.errors == 1  # not retried until the pointer changes
    fail[0] = False
    reg.rollback("ranker")  # back to v1, which it serves: no reload
    assert not f.check() and len(calls) == 1
    reg.promote("ranker", v2)
    assert f.check() and calls[-1] == (reg.path(v2), v2)
    # a follower told what the service already loaded does not reload it
    g = RegistryFollower(reg, "ranker", on_change, loaded_version=v2)
    assert not g.check() and len(calls) == 2


def _model(seed: int) -> RankerModel:
    torch.manual_seed(seed)
    m = RankerModel(RankerConfig.tiny(num_layers=1)).eval()
    with torch.no_grad():
        m.action_head.weight.normal_(std=0.5)
    return m


def _predict_request(n_cand: int = 20) -> phoenix_pb2.PredictRequest:
    rng = np.random.default_rng(0)
    items = [
        phoenix_pb2.HistoryItem(
            post_id=int(p), author_id=int(a), action_mask=int(m), product_surface=1, dwell_ms=int(d)
        )
        for p, a, m, d in zip(
            rng.integers(1, 10**12, 6),
            rng.integers(1, 10**6, 6),
            rng.integers(0, 2**14, 6),
            rng.integers(0, 40_000, 6),
            strict=True,
        )
    ]
    cands = [
        phoenix_pb2.RankCandidate(post_id=int(p), author_id=int(a), product_surface=1)
        for p, a in zip(rng.integers(1, 10**12, n_cand), rng.integers(1, 10**6, n_cand), strict=True)
    ]
    return phoenix_pb2.PredictRequest(
        user_id=5, action_sequence=phoenix_pb2.ActionSequence(items=items), candidates=cands
    )


def test_service_follows_promotions_and_rollback_restores_scores(reg: Registry, tmp_path: Path) -> None:
    for name, seed in (("a", 0), ("b", 1)):
        save_model(tmp_path / name, _model(seed), step=seed + 1)
    va, vb = reg.register("ranker", tmp_path / "a"), reg.register("ranker", tmp_path / "b")
    mva, mvb = reg.show(va)["model_version"], reg.show(vb)["model_version"]
    reg.promote("ranker", va)
    # a service started on the registry: load the promoted version, then follow the pointer;
    # no score cache, so every response below is computed by the model being served
    handler = RankingHandler.from_dir(reg.promoted_path("ranker"), RankingHandlerConfig(cache_max_entries=0))
    follower = follow_promoted(reg, "ranker", handler, interval_s=0.02, loaded_version=va)
    server, port = serve_ranking(handler)
    responses: list[tuple[str, np.ndarray]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    request = _predict_request()

    def client() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = phoenix_pb2_grpc.RankingServiceStub(ch)
            while not stop.is_set():
                try:
                    r = stub.Predict(request, timeout=10)
                    responses.append((r.model_version, np.array([p.action_probs for p in r.predictions])))
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)

    def wait_for(model_version: str, after: int) -> int:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            hits = [i for i, (v, _) in enumerate(responses[after:], after) if v == model_version]
            if hits:
                return hits[0]
            time.sleep(0.01)
        raise AssertionError(f"service never switched to {model_version}")

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        i_a = wait_for(mva, 0)
        reg.promote("ranker", vb)
        i_b = wait_for(mvb, i_a)
        assert reg.rollback("ranker") == va
        i_back = wait_for(mva, i_b + 1)
        time.sleep(0.2)  # calls in flight during the swap finish
        i_settled = len(responses)
        time.sleep(0.2)  # a few more calls on the restored model
    finally:
        stop.set()
        for t in threads:
            t.join()
        follower.stop()
        server.stop(0)
    assert not errors, errors[0]
    assert follower.version == va and follower.errors == 0

    def scores(version: str) -> np.ndarray:  # the version's own scores, from a fresh handler
        h = RankingHandler.from_dir(reg.path(version))
        hist, cands = history_from_proto(request.action_sequence), candidates_from_proto(request.candidates)
        return h.predict(request.user_id, hist, cands)[0]

    scores_a, scores_b = scores(va), scores(vb)
    assert not np.allclose(scores_a, scores_b)
    # every response is exactly one model's scores (never a half-loaded model); B served between
    # promotion and rollback; after the rollback the previous scores exactly. (The servicer reads the
    # version label after predicting, so a response racing a swap may carry the other label.)
    for v, probs in responses:
        assert v in (mva, mvb)
        assert np.array_equal(probs, scores_a) or np.array_equal(probs, scores_b)
    np.testing.assert_array_equal(responses[i_a][1], scores_a)
    assert any(np.array_equal(p, scores_b) for _, p in responses[i_b:i_back])
    assert len(responses) > i_settled
    assert all(np.array_equal(p, scores_a) for _, p in responses[i_settled:])
