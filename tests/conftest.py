"""Session-wide real infrastructure: a Tansu broker and a redis-server on free ports (or the
external ones from FORYOU_KAFKA_BOOTSTRAP / FORYOU_REDIS_URL). Every test gets its own topic and
key prefixes so tests never see each other's data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from foryou.app import infra
from foryou.core.kafka import ensure_topics
from foryou.core.settings import Settings


@pytest.fixture(scope="session")
def _infra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="session")
def kafka_bootstrap(_infra_dir: Path) -> Iterator[str]:
    external = os.environ.get("FORYOU_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    proc, bootstrap = infra.start_broker(_infra_dir)
    try:
        yield bootstrap
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def redis_url(_infra_dir: Path) -> Iterator[str]:
    external = os.environ.get("FORYOU_REDIS_URL")
    if external:
        yield external
        return
    proc, url = infra.start_redis(_infra_dir)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _unique(tag: str = "") -> str:
    return f"t{uuid.uuid4().hex[:10]}{tag}"


@pytest.fixture
def make_settings(redis_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Factory: `make_settings(bootstrap, **fields)` -> Settings on that broker and the session
    Redis with fresh topic and key prefixes; topics created."""

    def make(kafka_bootstrap: str, **fields: Any) -> Settings:
        uid = _unique()
        s = Settings(
            kafka_bootstrap=kafka_bootstrap,
            redis_url=redis_url,
            data_dir=str(tmp_path / "data"),
            topic_prefix=f"{uid}.",
            redis_prefix=f"{uid}:",
            partitions=2,
            kafka_session_timeout_ms=2000,
            log_json=False,
            **fields,
        )
        ensure_topics(s, s.topics())
        return s

    return make


@pytest.fixture
def settings(kafka_bootstrap: str, make_settings: Callable[..., Settings]) -> Settings:
    """Settings on the session broker and Redis with per-test topic and key prefixes; topics created."""
    return make_settings(kafka_bootstrap)


@pytest.fixture
def unique_topic(settings: Settings) -> Callable[..., str]:
    """Factory: `unique_topic("posts", partitions=2)` creates and returns a fresh topic name."""

    def make(name: str = "topic", partitions: int = 1) -> str:
        topic = f"{_unique()}.{name}"
        ensure_topics(settings, {topic: partitions, settings.dlq_topic(topic): 1})
        return topic

    return make


@pytest.fixture
def unique_prefix() -> str:
    return f"{_unique()}:"
