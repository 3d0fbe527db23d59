"""`foryou serve phoenix` as a real process: a ranking-only Phoenix needs no Kafka or Redis, reports
SERVING, answers Predict, exposes its Prometheus metrics and exits cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from foryou.core.net import free_port
from phoenix.ranker.checkpoint import save_model
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.model import RankerModel
from phoenix.ranker.servicer import SERVICE_NAME
from protos import phoenix_pb2, phoenix_pb2_grpc


def _wait_serving(address: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    end = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < end:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=1.0)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise AssertionError(f"{address} not SERVING within {timeout_s} s")


def test_ranking_only_phoenix_process(tmp_path: Path) -> None:
    torch.manual_seed(0)
    version = save_model(tmp_path / "ranker", RankerModel(RankerConfig.tiny()), step=1)
    grpc_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORYOU_")}
    env["FORYOU_DATA_DIR"] = str(tmp_path / "data")  # no infra.json there: nothing to connect to
    args = ["serve", "phoenix", "--ranker-model", str(tmp_path / "ranker")]
    args += ["--ranker-address", f"127.0.0.1:{grpc_port}", "--metrics-port", str(metrics_port)]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from foryou.app.cli import app; app()", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        address = f"127.0.0.1:{grpc_port}"
        _wait_serving(address, proc)
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
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
