"""Shared fixtures of the app tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from foryou.core.net import free_port
from phoenix.ranker.servicer import SERVICE_NAME

PhoenixProcess = tuple[subprocess.Popen[str], str]


def _wait_serving(address: str, proc: subprocess.Popen[str], timeout_s: float = 90.0) -> None:
    """Until the ranking service reports SERVING; fails at once (with its stderr) if the process exits."""
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


@pytest.fixture
def serve_phoenix(tmp_path: Path) -> Iterator[Callable[..., PhoenixProcess]]:
    """`serve_phoenix(*args, env_extra=None)`: `foryou serve phoenix ARGS` as a real process on a
    free ranker port, without any FORYOU_ variable but those in `env_extra` and with an empty data
    directory (no infra.json: a ranking-only Phoenix); returns (process, ranker address) once it is
    SERVING. Killed at teardown if alive."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env_extra: dict[str, str] | None = None) -> PhoenixProcess:
        address = f"127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FORYOU_")}
        env["FORYOU_DATA_DIR"] = str(tmp_path / "data")
        env.update(env_extra or {})
        proc = subprocess.Popen(
            [sys.executable, "-c", "from foryou.app.cli import app; app()", "serve", "phoenix", *args]
            + ["--ranker-address", address],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        _wait_serving(address, proc)
        return proc, address

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
