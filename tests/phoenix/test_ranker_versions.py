"""A ranker started from a registry serves any of its versions per request
(PredictRequest.model_version: experiment buckets, shadow scoring) from a small LRU beside the
promoted model; an unknown version is FAILED_PRECONDITION and the promoted model is untouched."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from foryou.app.in_process import RankingHandlerClient
from phoenix.ranker.checkpoint import save_model
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.handler import RankingHandler, RankingHandlerConfig, UnknownModelVersion
from phoenix.ranker.model import RankerModel
from phoenix.ranker.servicer import serve_ranking
from phoenix.registry import Registry
from protos import phoenix_pb2, phoenix_pb2_grpc


def _model(seed: int) -> RankerModel:
    torch.manual_seed(seed)
    m = RankerModel(RankerConfig.tiny(num_layers=1)).eval()
    with torch.no_grad():
        m.action_head.weight.normal_(std=0.5)
    return m


def _request(version: str = "") -> phoenix_pb2.PredictRequest:
    rng = np.random.default_rng(0)
    req = phoenix_pb2.PredictRequest(user_id=5, model_version=version)
    for p, a in zip(rng.integers(1, 10**12, 4), rng.integers(1, 10**6, 4), strict=True):
        req.action_sequence.items.add(post_id=int(p), author_id=int(a), action_mask=2, product_surface=1)
    for p, a in zip(rng.integers(1, 10**12, 12), rng.integers(1, 10**6, 12), strict=True):
        req.candidates.add(post_id=int(p), author_id=int(a), product_surface=1)
    return req


@pytest.fixture
def registry(tmp_path: Path) -> tuple[Registry, list[str]]:
    reg = Registry(tmp_path / "models")
    versions = []
    for seed in range(3):
        save_model(tmp_path / f"ckpt{seed}", _model(seed), step=seed + 1)
        versions.append(reg.register("ranker", tmp_path / f"ckpt{seed}"))
    reg.promote("ranker", versions[0])
    return reg, versions


def _probs(resp: phoenix_pb2.PredictResponse) -> np.ndarray:
    return np.array([p.action_probs for p in resp.predictions])


def test_predict_serves_a_named_registry_version(registry: tuple[Registry, list[str]]) -> None:
    reg, (v1, v2, v3) = registry
    handler = RankingHandler.from_dir(reg.path(v1), RankingHandlerConfig(max_loaded_versions=1))
    server, port = serve_ranking(handler)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = phoenix_pb2_grpc.RankingServiceStub(ch)
            base = stub.Predict(_request(), timeout=30)
            other = stub.Predict(_request(v2), timeout=30)
            again = stub.Predict(_request(v1), timeout=30)  # the promoted version by its registry name
            assert base.model_version == reg.show(v1)["model_version"] == again.model_version
            assert other.model_version == reg.show(v2)["model_version"]
            np.testing.assert_allclose(_probs(again), _probs(base), atol=1e-6)
            # v2's scores are v2's own: equal to a handler started from it, not to v1's
            alone = RankingHandler.from_dir(reg.path(v2))
            ref = alone.predict(5, *_inputs(_request()))[0]
            np.testing.assert_allclose(_probs(other), ref, atol=1e-5)
            assert not np.allclose(_probs(other), _probs(base), atol=1e-3)
            with pytest.raises(grpc.RpcError) as e:
                stub.Predict(_request("ranker-0042"), timeout=30)
            assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "ranker-0042" in (e.value.details() or "")
            # the LRU keeps max_loaded_versions besides the served model
            stub.Predict(_request(v3), timeout=30)
            assert handler.versions.loaded() == [v3]
            assert handler.model_version == reg.show(v1)["model_version"]  # the served model is untouched
    finally:
        server.stop(0)


def _inputs(req: phoenix_pb2.PredictRequest) -> tuple:  # type: ignore[type-arg]
    from phoenix.ranker.servicer import candidates_from_proto, history_from_proto

    return history_from_proto(req.action_sequence), candidates_from_proto(req.candidates)


def test_in_process_client_and_a_handler_without_registry(
    registry: tuple[Registry, list[str]], tmp_path: Path
) -> None:
    import asyncio

    reg, (v1, v2, _) = registry
    client = RankingHandlerClient(RankingHandler.from_dir(reg.path(v1)))
    preds = asyncio.run(client.predict(_request(v2)))
    assert preds.model_version == reg.show(v2)["model_version"]
    # a checkpoint outside a registry serves only itself
    plain = RankingHandler.from_dir(tmp_path / "ckpt0")
    with pytest.raises(UnknownModelVersion, match="no registry"):
        plain.predict(5, *_inputs(_request()), model_version=v2)
