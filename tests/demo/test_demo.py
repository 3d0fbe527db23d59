"""`foryou demo` on a tiny world, run as a user runs it: three non-empty feeds, nothing left behind."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_demo_prints_three_feeds_and_leaves_no_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("FORYOU_KAFKA_BOOTSTRAP", "FORYOU_REDIS_URL")}
    env.update(FORYOU_DATA_DIR=str(tmp_path), COLUMNS="160")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "foryou.app.cli",
            "demo",
            "--preset",
            "tiny",
            "--tiny-model",
            "--ranker-max-steps",
            "20",
            "--retrieval-max-steps",
            "20",
            "--quality-users",
            "20",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    feeds = re.findall(r"For You feed of user (\d+) \((\d+) posts", proc.stdout)
    assert len(feeds) == 3
    assert all(int(n) > 0 for _, n in feeds)
    # both sources reach the feed: Thunder (in-network) and two-tower retrieval over FAISS
    assert "in-network" in proc.stdout and "out-of-network" in proc.stdout
    assert "FAISS" in proc.stdout
    assert "removed" in proc.stdout and "demo finished in" in proc.stdout
    # every feed is scored against the world's ground truth: served, newest-first, eligible, best
    truth = re.findall(r"ground truth, mean P\(favorite\) / P\(negative feedback\): (.*)", proc.stdout)
    assert len(truth) == 3
    for line in truth:
        values = [float(v) for v in re.findall(r"(\d+\.\d+) / (\d+\.\d+)", line) for v in v]
        assert len(values) == 8 and all(0.0 <= v <= 1.0 for v in values)
        assert values[0] <= values[6] + 1e-9  # no feed beats the best possible one
    summary = re.search(r"feed quality over (\d+) users .*: (.*)", proc.stdout)
    assert summary is not None and int(summary.group(1)) >= 10
    values = [float(v) for v in re.findall(r"(\d+\.\d+) / (\d+\.\d+)", summary.group(2)) for v in v]
    assert len(values) == 10 and all(0.0 <= v <= 1.0 for v in values)
    assert values[0] <= values[8] + 1e-9
    assert not (tmp_path / "infra.json").exists()
    # the broker and Redis the demo started (it prints their addresses) are gone
    ports = re.search(r"kafka 127\.0\.0\.1:(\d+)\s+redis redis://127\.0\.0\.1:(\d+)", proc.stdout)
    assert ports is not None
    assert not any(_listening(int(p)) for p in ports.groups())
