"""`foryou infra up|status|down` as a user runs it: separate processes, nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from foryou.app.infra import pid_alive

pytestmark = pytest.mark.integration


def _foryou(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORYOU_KAFKA_BOOTSTRAP", "FORYOU_REDIS_URL")}
    env["FORYOU_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "foryou.app.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_infra_up_status_down_leaves_nothing_behind(tmp_path: Path) -> None:
    up = _foryou(tmp_path, "infra", "up")
    assert up.returncode == 0, up.stderr
    assert "kafka bootstrap: 127.0.0.1:" in up.stdout
    assert "redis url:       redis://127.0.0.1:" in up.stdout
    state = json.loads((tmp_path / "infra.json").read_text())
    pids = [state["broker_pid"], state["redis_pid"]]
    assert all(pid_alive(p) for p in pids)

    st = _foryou(tmp_path, "infra", "status", "--json")
    assert st.returncode == 0, st.stdout + st.stderr
    report = json.loads(st.stdout)
    assert report["healthy"] is True
    assert {"posts", "engagements", "user-events", "posts.dlq"} <= set(report["topics"])

    down = _foryou(tmp_path, "infra", "down")
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(p) for p in pids)
    assert not (tmp_path / "infra.json").exists()
    after = _foryou(tmp_path, "infra", "status", "--json")
    assert after.returncode == 1
