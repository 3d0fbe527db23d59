"""`foryou demo` on a tiny world, run as a user runs it: three non-empty feeds, nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _children_named(names: tuple[str, ...]) -> set[int]:
    out = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                exe = os.readlink(p / "exe")
            except OSError:
                continue
            if any(n in exe for n in names):
                out.add(int(p.name))
    return out


def test_demo_prints_three_feeds_and_leaves_no_process(tmp_path: Path) -> None:
    before = _children_named(("tansu", "redis-server"))
    env = {k: v for k, v in os.environ.items() if k not in ("FORYOU_KAFKA_BOOTSTRAP", "FORYOU_REDIS_URL")}
    env.update(FORYOU_DATA_DIR=str(tmp_path), COLUMNS="160")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "foryou.cli",
            "demo",
            "--preset",
            "tiny",
            "--tiny-model",
            "--ranker-max-steps",
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
    assert "removed" in proc.stdout and "demo finished in" in proc.stdout
    assert not (tmp_path / "infra.json").exists()
    assert _children_named(("tansu", "redis-server")) - before == set()
