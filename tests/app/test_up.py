"""`foryou up` run as a user runs it (issue 21): it writes <data dir>/addresses.json, `foryou feed`
finds the stack through that file, /metrics answers Prometheus text, and one Ctrl-C ends it with
the address file removed and the Kafka broker and Redis it started gone. Tiny world, tiny ranker,
no retrieval: about 15 s of CPU."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from foryou.app.infra import pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UP_ARGS = ["--preset", "tiny", "--tiny-model", "--no-retrieval", "--ports", "free", "--ui-port", "0"]


def _wait_for(
    what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        assert proc.poll() is None, f"`foryou up` exited ({proc.returncode}) before {what}: {log.read_text()}"
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout_s} s: {log.read_text()}")


def _foryou(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "foryou.app.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_up_serves_feeds_by_its_address_file_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORYOU_")}
    env.update({"FORYOU_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    log = tmp_path / "up.log"
    addresses = data / "addresses.json"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "foryou.app.cli", "up", *UP_ARGS],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    started: list[int] = []
    try:
        _wait_for("addresses.json", addresses.exists, proc, log, 300)
        record = json.loads(addresses.read_text())
        assert record["pid"] == proc.pid
        infra_state = json.loads((data / "infra.json").read_text())
        started = [infra_state["broker_pid"], infra_state["redis_pid"]]
        assert all(pid_alive(pid) for pid in started)
        # `foryou up` says which viewer to try; any user of the world would do
        _wait_for("the ready line", lambda: "Ctrl-C stops" in log.read_text(), proc, log, 60)
        viewer = re.search(r"foryou feed (\d+)", log.read_text())
        assert viewer, log.read_text()

        # no --address: `foryou feed` finds home_mixer through addresses.json
        res = _foryou(env, "feed", viewer.group(1), "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        posts = json.loads(res.stdout)["scored_posts"]
        assert posts and all(int(p["post_id"]) > 0 for p in posts)

        with urllib.request.urlopen(record["metrics"], timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
        assert "# TYPE " in text and "# HELP " in text  # Prometheus exposition format

        proc.send_signal(signal.SIGINT)  # once
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert "stopped; every service, Kafka and Redis it started are down" in output
    assert "Traceback" not in output
    assert not addresses.exists()
    deadline = time.monotonic() + 30
    while any(pid_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(pid) for pid in started)
    assert not (data / "infra.json").exists()
    # with the address file gone, `foryou feed` finds no stack: one error line, not a traceback
    res = _foryou(env, "feed", viewer.group(1), "--json")
    assert res.returncode != 0 and res.stdout == "" and "Traceback" not in res.stderr
