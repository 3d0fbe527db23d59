"""`foryou serve phoenix` as a real process: a ranking-only Phoenix needs no Kafka or Redis, reports
SERVING, answers Predict, exposes its Prometheus metrics and exits cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import torch

from foryou.core.net import free_port
from phoenix.ranker.checkpoint import save_model
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.model import RankerModel
from protos import phoenix_pb2, phoenix_pb2_grpc


def test_ranking_only_phoenix_process(
    tmp_path: Path, serve_phoenix: Callable[..., tuple[subprocess.Popen[str], str]]
) -> None:
    torch.manual_seed(0)
    version = save_model(tmp_path / "ranker", RankerModel(RankerConfig.tiny()), step=1)
    metrics_port = free_port()
    proc, address = serve_phoenix(
        "--ranker-model", str(tmp_path / "ranker"), "--metrics-port", str(metrics_port)
    )
    req = phoenix_pb2.PredictRequest(
        user_id=7,
        action_sequence=phoenix_pb2.ActionSequence(
            items=[phoenix_pb2.HistoryItem(post_id=11, author_id=3, action_mask=2)]
        ),
        candidates=[phoenix_pb2.RankCandidate(post_id=p, author_id=4) for p in (21, 22, 23)],
    )
    with grpc.insecure_channel(address) as ch:
        resp = phoenix_pb2_grpc.RankingServiceStub(ch).Predict(req, timeout=10)
    assert [p.post_id for p in resp.predictions] == [21, 22, 23] and resp.model_version == version
    assert all(len(p.action_probs) == 64 for p in resp.predictions)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert "phoenix_ranker_predict_seconds_count 1.0" in metrics
    assert f'phoenix_ranker_model_info{{model_version="{version}"}} 1.0' in metrics
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def _predict(n_cand: int, n_hist: int = 1) -> phoenix_pb2.PredictRequest:
    return phoenix_pb2.PredictRequest(
        user_id=7,
        action_sequence=phoenix_pb2.ActionSequence(
            items=[phoenix_pb2.HistoryItem(post_id=11 + i, author_id=3, action_mask=2) for i in range(n_hist)]
        ),
        candidates=[phoenix_pb2.RankCandidate(post_id=100 + i, author_id=4) for i in range(n_cand)],
    )


def test_limits_from_flags_and_config_file(
    tmp_path: Path, serve_phoenix: Callable[..., tuple[subprocess.Popen[str], str]]
) -> None:
    """`--max-candidates 10` on the command line and `max_history = 2` from the `--config` file
    (named by FORYOU_CONFIG): a Predict one over either limit is INVALID_ARGUMENT, at the limits it
    is served."""
    torch.manual_seed(0)
    save_model(tmp_path / "ranker", RankerModel(RankerConfig.tiny()), step=1)
    config = tmp_path / "foryou.toml"
    config.write_text("[serve.phoenix]\nmax_history = 2\nmax_candidates = 500  # the flag wins\n")
    proc, address = serve_phoenix(
        "--ranker-model",
        str(tmp_path / "ranker"),
        "--max-candidates",
        "10",
        env_extra={"FORYOU_CONFIG": str(config)},
    )
    with grpc.insecure_channel(address) as ch:
        stub = phoenix_pb2_grpc.RankingServiceStub(ch)
        assert len(stub.Predict(_predict(10, 2), timeout=10).predictions) == 10
        for req, needle in (
            (_predict(11), "11 candidates; at most 10"),
            (_predict(3, 3), "3 items; at most 2"),
        ):
            with pytest.raises(grpc.RpcError) as e:
                stub.Predict(req, timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert needle in (e.value.details() or "")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
