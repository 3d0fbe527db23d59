"""Ctrl-C during the demo's longest stage (training) stops it once: the process ends, and the
embedded Kafka broker and Redis it started are gone (issue 21)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from foryou.app.infra import pid_alive


def _wait_for(what: str, check: object, proc: subprocess.Popen[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        assert proc.poll() is None, f"demo exited ({proc.returncode}) before {what}: {proc.communicate()[0]}"
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout_s} s")


def test_ctrl_c_during_training_stops_the_demo_and_its_infrastructure(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORYOU_")}
    env.update({"FORYOU_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1", "COLUMNS": "80"})
    # a ranker that would train for an hour: only Ctrl-C ends this run early
    args = ["demo", "--preset", "tiny", "--tiny-model", "--no-retrieval", "--quality-users", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "foryou.app.cli", *args, "--ranker-max-steps", "1000000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        models = data / "models"
        _wait_for("training", lambda: models.exists() and any(models.glob("ranker-*")), proc, 300)
        state = json.loads((data / "infra.json").read_text())
        started = [state["broker_pid"], state["redis_pid"]]
        assert all(pid_alive(pid) for pid in started)
        assert state["users"] == [proc.pid]  # the demo recorded that it uses them

        proc.send_signal(signal.SIGINT)  # once
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out
    assert "stopping…" in out and "stopped; every service, Kafka and Redis it started are down" in out
    assert "Traceback" not in out
    deadline = time.monotonic() + 30
    while any(pid_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(pid) for pid in started)
    assert not (data / "infra.json").exists()
    # the interrupted training left no half-trained checkpoint for a later demo to reuse
    assert not any((p / "model.safetensors").exists() for p in (data / "models").glob("ranker-*"))
