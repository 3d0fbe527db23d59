"""Shared fixtures of the Phoenix tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from world import WorldConfig, generate_world


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic world (seed 0) saved: a log directory with the world's extra tables; tests
    only read it."""
    return generate_world(WorldConfig.tiny(seed=0)).save(tmp_path_factory.mktemp("world"))
