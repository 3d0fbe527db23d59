"""Overload shedding of Thunder (issue 16), against a real server process (tests/thunder/
overload_server.py): a burst of requests that cannot all finish before their deadline is answered
with OK for what fits and RESOURCE_EXHAUSTED, at once, for the rest; never DEADLINE_EXCEEDED, and
every shed request counted in the admission metric. Each store query sleeps 30 ms in the server
(CPU-free), so the outcome does not depend on how loaded this machine is."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from protos import thunder_pb2 as pb

SERVER = Path(__file__).with_name("overload_server.py")
AUTHORS = 100  # every request follows all of them
DELAY_MS = 30  # per store query
METHOD = "/foryou.thunder.InNetworkPostsService/GetInNetworkPosts"


@pytest.fixture
def thunder_process() -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), str(AUTHORS), "20", str(DELAY_MS)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        address, metrics_port = proc.stdout.readline().split()
        yield address, int(metrics_port)
    finally:
        proc.kill()
        proc.wait()


def _metric(port: int, name: str, labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
    return float(m[1]) if m else 0.0


async def _burst(address: str, n: int, deadline_s: float) -> list[tuple[grpc.StatusCode, str]]:
    raw = pb.GetInNetworkPostsRequest(user_id=1, following_user_ids=range(1, AUTHORS + 1)).SerializeToString()
    async with grpc.aio.insecure_channel(address) as ch:
        # raw bytes both ways: the client spends little CPU on the cores it shares with the server
        call = ch.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        for _ in range(5):  # the server measures what a request costs
            await call(raw, timeout=10)

        async def one() -> tuple[grpc.StatusCode, str]:
            try:
                await call(raw, timeout=deadline_s)
                return grpc.StatusCode.OK, ""
            except grpc.aio.AioRpcError as e:
                return e.code(), e.details() or ""

        return await asyncio.gather(*[one() for _ in range(n)])


def test_burst_beyond_capacity_is_shed_not_timed_out(thunder_process: tuple[str, int]) -> None:
    """60 requests at once, 30 ms of work each (1.8 s in all), one at a time, with a 1 s deadline:
    most cannot finish in time."""
    address, metrics_port = thunder_process
    results = asyncio.run(_burst(address, 60, 1.0))
    codes = Counter(code for code, _ in results)
    print(dict(codes))
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert codes[grpc.StatusCode.OK] >= 1 and codes[grpc.StatusCode.RESOURCE_EXHAUSTED] >= 1, codes
    shed_details = {d for c, d in results if c == grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert all("deadline" in d for d in shed_details), shed_details
    shed = codes[grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert (
        _metric(metrics_port, "foryou_admission_requests_total", 'outcome="shed",service="thunder"') == shed
    )
    assert _metric(metrics_port, "thunder_rejected_requests_total", 'reason="shed"') == shed
