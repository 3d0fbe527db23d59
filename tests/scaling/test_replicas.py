"""Replicas (issue 22): one client address list names two home_mixer replicas (separate
processes); calls are spread over both, and when one is killed under load no request fails."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from foryou.core import tls
from foryou.core.net import free_port
from protos import home_mixer_pb2, home_mixer_pb2_grpc

pytestmark = [pytest.mark.integration]

REPLICA = Path(__file__).with_name("replica_main.py")


def start_replica(port: int, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(REPLICA), str(port), name], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the replica serves (or dies: "")
    assert line.strip() == "ready", f"replica {name} did not start"
    return proc


def test_address_forms() -> None:
    assert tls.replicas_target("127.0.0.1:5001, 127.0.0.1:5002") == (
        "ipv4:127.0.0.1:5001,127.0.0.1:5002",
        True,
    )
    assert tls.replicas_target("dns:///home-mixer:50051") == ("dns:///home-mixer:50051", True)
    assert tls.replicas_target("localhost:50051") == ("localhost:50051", False)
    with pytest.raises(ValueError, match="dns:///"):
        tls.replicas_target("hm-1:50051,hm-2:50051")


def test_two_replicas_one_killed_mid_load_no_failed_request() -> None:
    ports = [free_port(), free_port()]
    procs = [start_replica(p, f"replica-{i}") for i, p in enumerate(ports)]
    try:
        address = ",".join(f"127.0.0.1:{p}" for p in ports)
        with tls.channel(address, None) as ch:
            stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)

            def call(_: int) -> str:
                resp = stub.GetScoredPosts(home_mixer_pb2.GetScoredPostsRequest(viewer_id=1), timeout=20)
                assert resp.scored_posts
                return resp.model_version

            with ThreadPoolExecutor(4) as pool:
                before = Counter(pool.map(call, range(40)))
                # both replicas served: the calls are spread round-robin
                assert set(before) == {"replica-0", "replica-1"}, before
                futures = [pool.submit(call, i) for i in range(120)]
                procs[0].kill()  # with calls in flight and queued
                procs[0].wait(10)
                after = Counter(f.result() for f in futures)  # raises if any call failed
            assert sum(after.values()) == 120
            # once the kill was seen, only the survivor answered
            tail = Counter(call(i) for i in range(20))
            assert tail == {"replica-1": 20}
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
