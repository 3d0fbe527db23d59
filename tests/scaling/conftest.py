"""Fixtures of the scaling tests (issue 22): a local 3-master Redis Cluster."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from foryou.app.infra import redis_binary

SLOTS = 16384


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000, fixed in redis 6.2) is free too: an
    ephemeral port from the kernel can be above 55535, where the bus port does not exist."""
    while True:
        port = random.randint(20000, 40000)
        if _bindable(port) and _bindable(port + 10000):
            return port


def start_redis_cluster(workdir: Path, masters: int = 3) -> tuple[list[subprocess.Popen[bytes]], str]:
    """`masters` redis-servers in cluster mode on free ports, slots split evenly, joined with
    CLUSTER ADDSLOTS / CLUSTER MEET (no redis-cli needed): (processes, redis+cluster:// URL)."""
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    for i in range(masters):
        port = cluster_port()
        d = workdir / f"node{i}"
        d.mkdir(parents=True)
        cmd = [
            redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--cluster-enabled", "yes", "--cluster-config-file", str(d / "nodes.conf"),
            "--cluster-node-timeout", "2000", "--dir", str(d), "--daemonize", "no",
        ]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports.append(port)
    try:
        _join(ports)
    except BaseException:
        for proc in procs:
            proc.kill()
            proc.wait(10)
        raise
    return procs, "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)


def _join(ports: list[int]) -> None:
    masters = len(ports)
    clients = [redis.Redis(port=p) for p in ports]
    deadline = time.monotonic() + 10
    for c in clients:
        while True:
            try:
                c.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    per = SLOTS // masters
    for i, c in enumerate(clients):
        hi = SLOTS if i == masters - 1 else (i + 1) * per
        c.execute_command("CLUSTER ADDSLOTS", *range(i * per, hi))
    for p in ports[1:]:
        clients[0].execute_command("CLUSTER MEET", "127.0.0.1", p)
    deadline = time.monotonic() + 20
    while not all(c.execute_command("CLUSTER INFO").get("cluster_state") == "ok" for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError("redis cluster did not converge")
        time.sleep(0.1)
    # every node must know every other (CLUSTER NODES), or a client may be redirected to an unknown node
    while not all(len(c.execute_command("CLUSTER NODES")) == masters for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError("redis cluster nodes did not meet")
        time.sleep(0.1)
    for c in clients:
        c.close()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    procs, url = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield url
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
