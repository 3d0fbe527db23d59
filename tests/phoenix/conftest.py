"""Shared fixtures of the Phoenix tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from protos import phoenix_pb2
from world import WorldConfig, generate_world


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic world (seed 0) saved: a log directory with the world's extra tables; tests
    only read it."""
    return generate_world(WorldConfig.tiny(seed=0)).save(tmp_path_factory.mktemp("world"))


@pytest.fixture
def rss_mb() -> Callable[[], float]:
    """Reads this process's resident set size in MB (Linux /proc)."""

    def read() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    return read


@pytest.fixture
def widest_history_item() -> phoenix_pb2.HistoryItem:
    """A history item at its largest encoding: every id, enum and time -1 (a 10-byte varint)."""
    return phoenix_pb2.HistoryItem(
        post_id=-1, author_id=-1, action_mask=2**64 - 1, product_surface=-1, timestamp_ms=-1, dwell_ms=-1
    )
