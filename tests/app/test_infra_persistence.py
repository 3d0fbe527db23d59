"""The embedded Redis keeps user state across a kill and restart (append-only file in the data
directory); without persistence the same restart loses it."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import redis

from foryou.app import infra

pytestmark = pytest.mark.integration


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


@pytest.mark.parametrize("persist", [True, False])
def test_redis_state_survives_kill_and_restart_only_when_persistent(tmp_path: Path, persist: bool) -> None:
    proc, url = infra.start_redis(tmp_path, persist=persist)
    try:
        r = redis.Redis.from_url(url)
        r.config_set("appendfsync", "always")  # deterministic for the test: every write on disk
        r.sadd("fy:following:1", 2, 3)
        r.set("fy:post:9", b"\x08\x09")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc, url2 = infra.start_redis(tmp_path, port=_port(url), persist=persist)
        assert url2 == url
        r2 = redis.Redis.from_url(url)
        if persist:
            assert r2.smembers("fy:following:1") == {b"2", b"3"}
            assert r2.get("fy:post:9") == b"\x08\x09"
        else:
            assert r2.dbsize() == 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_clear_user_state_deletes_only_the_prefix(redis_url: str, tmp_path: Path) -> None:
    from foryou.core.settings import Settings

    r = redis.Redis.from_url(redis_url)
    r.set("clrA:post:1", b"x")
    r.sadd("clrA:following:2", 3)
    r.set("clrB:post:1", b"y")
    s = Settings(
        redis_url=redis_url, kafka_bootstrap="unused:1", redis_prefix="clrA:", data_dir=str(tmp_path)
    )
    assert infra.clear_user_state(s) == 2
    assert r.exists("clrA:post:1", "clrA:following:2") == 0
    assert r.get("clrB:post:1") == b"y"
