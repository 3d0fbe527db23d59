"""A `redis+sentinel://` URL through a real Sentinel: a redis-server master and a redis-server in
Sentinel mode monitoring it (the bundled binary); the sync and async clients reach the master by
its service name (a SET sent to the Sentinel's own port would fail), and what they write is on the
master."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from foryou.app.infra import redis_binary
from foryou.core import redis_client
from foryou.core.net import free_port

pytestmark = [pytest.mark.integration]


def _wait_ping(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, "redis-server exited"
        try:
            if redis.Redis(port=port, socket_timeout=1).ping():
                return
        except redis.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"nothing answers on {port}"
        time.sleep(0.1)


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """(redis+sentinel URL naming service `mymaster`, the master's port)."""
    master, sentinel = free_port(), free_port()
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its config file: it must be writable
    conf.write_text(f"port {sentinel}\nsentinel monitor mymaster 127.0.0.1 {master} 1\n")
    procs = [
        subprocess.Popen(
            [redis_binary(), "--port", str(master), "--save", "", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )
    ]
    try:
        _wait_ping(master, procs[0])
        procs.append(subprocess.Popen([redis_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL))
        _wait_ping(sentinel, procs[1])
        yield f"redis+sentinel://127.0.0.1:{sentinel}/mymaster", master
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def test_sentinel_url_reaches_the_master(sentinel_url: tuple[str, int]) -> None:
    url, master_port = sentinel_url
    client = redis_client.connect(url)
    client.set("fy:probe", b"1")
    direct = redis.Redis(port=master_port)
    assert direct.get("fy:probe") == b"1"  # the write landed on the master Sentinel named
    assert not redis_client.is_cluster(client)

    async def read() -> bytes | None:
        aclient = redis_client.connect_async(url)
        try:
            return await aclient.get("fy:probe")
        finally:
            await aclient.aclose()

    assert asyncio.run(read()) == b"1"
    assert redis_client.mget(client, ["fy:probe", "fy:absent"]) == [b"1", None]
