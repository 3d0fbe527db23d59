"""bench/load.py against a tiny in-process gRPC server (Thunder's service, a fake servicer that
answers OK, RESOURCE_EXHAUSTED, INVALID_ARGUMENT or too late, by request): counts per status,
bounds, percentiles and the saturation search. Structural assertions only, no timing ones."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import sys
from pathlib import Path
from types import ModuleType

import grpc
import numpy as np
import pytest

from protos import thunder_pb2, thunder_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_load_tool", ROOT / "bench" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


lt = _load_tool()
PATH = lt.SERVICES["thunder"].path
DEADLINE_S = 0.3


class FakeThunder(thunder_pb2_grpc.InNetworkPostsServiceServicer):
    """user_id % 5: 0 -> RESOURCE_EXHAUSTED, 1 -> INVALID_ARGUMENT, 2 -> past the client's deadline,
    else OK after a short sleep."""

    async def GetInNetworkPosts(  # noqa: N802 - grpc naming
        self, request: thunder_pb2.GetInNetworkPostsRequest, context: grpc.aio.ServicerContext
    ) -> thunder_pb2.GetInNetworkPostsResponse:
        kind = request.user_id % 5
        if kind == 0:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
        if kind == 1:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")
        await asyncio.sleep(5.0 if kind == 2 else 0.002)
        return thunder_pb2.GetInNetworkPostsResponse(posts=[thunder_pb2.LightPost(post_id=request.user_id)])


def _factory(i: int) -> bytes:
    return thunder_pb2.GetInNetworkPostsRequest(user_id=i).SerializeToString()


async def _with_server(body):  # type: ignore[no-untyped-def]
    server = grpc.aio.server()
    thunder_pb2_grpc.add_InNetworkPostsServiceServicer_to_server(FakeThunder(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        return await body(f"127.0.0.1:{port}", port)
    finally:
        await server.stop(0)


EXPECTED_40 = {"OK": 16, "RESOURCE_EXHAUSTED": 8, "INVALID_ARGUMENT": 8, "DEADLINE_EXCEEDED": 8}


def test_closed_loop_counts_every_status_and_stops_at_the_request_bound() -> None:
    async def body(address: str, port: int):  # type: ignore[no-untyped-def]
        return await lt.run_closed_loop(
            address,
            PATH,
            _factory,
            4,
            requests=40,
            duration_s=60.0,
            deadline_s=DEADLINE_S,
            server_pid=os.getpid(),
            service="thunder",
        )

    r = asyncio.run(_with_server(body))
    assert r.mode == "closed" and r.concurrency == 4
    assert r.sent == 40 and r.counts == EXPECTED_40
    assert sum(r.counts.values()) == r.sent
    # achieved = OK answers over the elapsed time: bounded by the request count
    assert r.achieved_rps * r.elapsed_s == pytest.approx(16)
    assert r.achieved_rps * r.elapsed_s <= r.sent
    assert r.p50_ms <= r.p95_ms <= r.p99_ms <= r.max_ms
    assert set(r.status_p50_ms) == set(EXPECTED_40)
    assert r.status_details["RESOURCE_EXHAUSTED"] == "busy"
    if sys.platform == "linux":  # the server is this process: its RSS is sampled
        assert r.peak_rss_mb is not None and r.peak_rss_mb > 0
        assert r.server_cpu is not None and r.server_cpu >= 0


def test_open_loop_sends_on_schedule_and_counts_every_status() -> None:
    async def body(address: str, port: int):  # type: ignore[no-untyped-def]
        if sys.platform == "linux":
            assert lt.local_pid_for_port(port) == os.getpid()
        return await lt.run_open_loop(
            address,
            PATH,
            _factory,
            500.0,
            requests=40,
            duration_s=60.0,
            deadline_s=DEADLINE_S,
            arrivals="fixed",
            service="thunder",
        )

    r = asyncio.run(_with_server(body))
    assert r.mode == "open" and r.arrivals == "fixed" and r.rate == 500.0
    # the request count bounds the run: 40 sends over a 40/500 s window, however long answers take
    assert r.sent == 40 and r.counts == EXPECTED_40
    assert r.window_s == pytest.approx(40 / 500)
    assert r.offered_rps == pytest.approx(500.0)
    assert r.achieved_rps <= r.counts["OK"] / r.window_s + 1e-9
    assert r.p50_ms <= r.p99_ms <= r.max_ms
    assert r.peak_rss_mb is None  # no server pid given


def test_runs_are_bounded() -> None:
    with pytest.raises(ValueError):
        asyncio.run(lt.run_closed_loop("127.0.0.1:1", PATH, _factory, 1, requests=0, duration_s=1.0))
    with pytest.raises(ValueError):
        asyncio.run(lt.run_open_loop("127.0.0.1:1", PATH, _factory, 10.0, requests=10, duration_s=0.0))
    with pytest.raises(ValueError):
        asyncio.run(lt.run_open_loop("127.0.0.1:1", PATH, _factory, 10.0, requests=10, duration_s=1e6))


def test_arrival_schedules() -> None:
    offsets, window = lt.arrival_offsets(100.0, 1000, 2.0, "fixed")
    assert window == 2.0 and len(offsets) == 200 and offsets[1] == pytest.approx(0.01)
    offsets, window = lt.arrival_offsets(100.0, 50, 2.0, "fixed")  # request-bounded
    assert window == pytest.approx(0.5) and len(offsets) == 50
    offsets, window = lt.arrival_offsets(100.0, 1000, 2.0, "poisson", seed=3)
    # the exact count (the offered rate), at random times: gaps are uneven, unlike `fixed`
    assert len(offsets) == 200 and offsets == sorted(offsets) and all(0 <= t < window for t in offsets)
    gaps = np.diff(offsets)
    assert gaps.min() < 0.01 < gaps.max()
    again, _ = lt.arrival_offsets(100.0, 1000, 2.0, "poisson", seed=3)
    assert again == offsets  # seeded
    with pytest.raises(ValueError):
        lt.arrival_offsets(0.0, 10, 1.0)


def test_percentile_on_known_values() -> None:
    xs = list(range(1, 101))
    assert lt.percentile(xs, 50) == pytest.approx(50.5)
    assert lt.percentile(xs, 99) == pytest.approx(99.01)
    assert lt.percentile(xs, 0) == 1 and lt.percentile(xs, 100) == 100
    assert lt.percentile([7.0], 99) == 7.0
    assert math.isnan(lt.percentile([], 50))
    assert lt.percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)  # unsorted input
    rng = np.random.default_rng(0)
    for _ in range(5):
        v = rng.exponential(10, 37).tolist()
        for q in (50, 95, 99):
            assert lt.percentile(v, q) == pytest.approx(float(np.percentile(v, q)))


def test_summarise_counts_degraded_and_achieved() -> None:
    samples = [lt.Sample("OK", float(ms), done_s=ms / 1000) for ms in range(1, 11)]
    samples[0].degraded = ["ranker"]
    samples.append(lt.Sample("RESOURCE_EXHAUSTED", 0.5, done_s=0.001))
    r = lt.summarise(samples, service="x", mode="open", sent=11, elapsed_s=0.02, window_s=1.0)
    assert r.counts == {"OK": 10, "RESOURCE_EXHAUSTED": 1}
    assert r.p50_ms == pytest.approx(5.5) and r.max_ms == 10 and r.mean_ms == pytest.approx(5.5)
    assert r.degraded == {"_requests": 1, "ranker": 1} and r.degraded_requests == 1
    assert r.achieved_rps == pytest.approx(9 / 1.0)  # good answers (OK, not degraded) over the window
    assert r.offered_rps == pytest.approx(11.0)
    assert r.share("RESOURCE_EXHAUSTED") == pytest.approx(1 / 11)
    assert r.to_json()["shed_share"] == pytest.approx(1 / 11)


def _synthetic(rate: float, capacity: float, shed: float = 0.0) -> object:
    """A run result as a server of `capacity` req/s would give it (no network)."""
    sent = 100
    over = rate > capacity
    rejected = int(sent * shed) if over else 0
    samples = [lt.Sample("OK", 500.0 if over else 10.0, done_s=1.0) for _ in range(sent - rejected)]
    samples += [lt.Sample("RESOURCE_EXHAUSTED", 1.0, done_s=1.0) for _ in range(rejected)]
    r = lt.summarise(samples, service="s", mode="open", sent=sent, elapsed_s=1.0, window_s=1.0, rate=rate)
    r.offered_rps = rate
    r.achieved_rps = min(rate, capacity) * (sent - rejected) / sent
    return r


def test_find_saturation_doubles_bisects_and_overloads() -> None:
    rates: list[float] = []

    async def run_at(rate: float):  # type: ignore[no-untyped-def]
        rates.append(rate)
        return _synthetic(rate, capacity=100.0, shed=0.5)

    async def calibrate():  # type: ignore[no-untyped-def]
        return _synthetic(50.0, capacity=100.0)

    sat = asyncio.run(
        lt.find_saturation(
            run_at, calibrate, service="s", slo_ms=100.0, deadline_ms=1000.0, retries=0, log=lambda _: None
        )
    )
    assert rates[:4] == [25.0, 50.0, 100.0, 200.0]  # from half the calibration rate, doubling
    assert sat.saturation_rps == 100.0 and sat.bound == "server"
    assert all(100.0 < r < 200.0 for r in rates[4:-1])  # bisection between good and bad
    assert sat.overload is not None and sat.overload.rate == 200.0 and rates[-1] == 200.0
    assert sat.overload.share("RESOURCE_EXHAUSTED") == pytest.approx(0.5)
    assert len(sat.steps) == len(rates) - 1  # every step but the overload run
    assert lt.keeps_up(sat.at_saturation, 100.0)
    assert sat.to_json()["saturation_rps"] == 100.0


def test_find_saturation_retries_a_failed_step_once() -> None:
    """A one-off stall fails a step below capacity: the retry passes it. Overload fails both tries."""
    rates: list[float] = []

    async def run_at(rate: float):  # type: ignore[no-untyped-def]
        rates.append(rate)
        stalled = rate == 50.0 and rates.count(50.0) == 1
        return _synthetic(rate, capacity=10.0 if stalled else 100.0)

    async def calibrate():  # type: ignore[no-untyped-def]
        return _synthetic(50.0, capacity=100.0)

    sat = asyncio.run(
        lt.find_saturation(
            run_at, calibrate, service="s", slo_ms=100.0, deadline_ms=1000.0, log=lambda _: None
        )
    )
    assert rates[:6] == [25.0, 50.0, 50.0, 100.0, 200.0, 200.0]
    assert sat.saturation_rps == 100.0 and sat.bound == "server"
    assert len(sat.steps) == len(rates) - 1


def test_find_saturation_steps_down_when_the_start_rate_is_too_much() -> None:
    async def run_at(rate: float):  # type: ignore[no-untyped-def]
        return _synthetic(rate, capacity=10.0)

    async def calibrate():  # type: ignore[no-untyped-def]
        return _synthetic(200.0, capacity=400.0)  # one client looked fast; the server is not

    sat = asyncio.run(
        lt.find_saturation(
            run_at, calibrate, service="s", slo_ms=50.0, deadline_ms=1000.0, log=lambda _: None
        )
    )
    assert sat.saturation_rps is not None and sat.saturation_rps <= 10.0


def test_tables_print_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    run = _synthetic(200.0, capacity=100.0, shed=0.25)
    lt.print_runs([run], tty=False)
    sat = lt.Saturation("s", 100.0, 1000.0, [run], 100.0, _synthetic(100.0, 100.0), run, "server")
    lt.print_saturation([sat], tty=False)
    out = capsys.readouterr().out
    assert "p99 ms" in out and "RESOURCE_EXHAUSTED 25" in out
    assert "25.0%" in out  # the shed share at 2x
