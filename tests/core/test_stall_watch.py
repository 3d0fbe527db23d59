"""StallWatch: NOT_SERVING until ready, SERVING while the consumer progresses, NOT_SERVING and
`stale` (with the gauge and the on_change hook) while it is stalled, SERVING again once it is not;
nothing reported after stop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from prometheus_client import REGISTRY

from foryou.core.stall_watch import StallWatch


class FakeServer:
    def __init__(self) -> None:
        self.reports: list[bool] = []

    async def set_serving(self, serving: bool) -> None:
        self.reports.append(serving)


async def _until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.005)


def _gauge(service: str) -> float | None:
    return REGISTRY.get_sample_value("foryou_service_stale", {"service": service})


def test_health_follows_readiness_and_stalls() -> None:
    stalled: list[str] = []
    ready = threading.Event()
    changes: list[bool] = []
    watch = StallWatch(
        "watch-test", lambda: stalled, ready=ready.is_set, interval_s=0.01, on_change=changes.append
    )
    server, stop = FakeServer(), threading.Event()

    async def run() -> None:
        task = watch.start(server, stop)
        await asyncio.sleep(0.05)
        assert server.reports == []  # replaying: stays NOT_SERVING (as the server started)
        ready.set()
        await _until(lambda: server.reports == [True])

        stalled.append("posts")
        await _until(lambda: server.reports == [True, False])
        assert watch.stale and watch.reasons == ["posts"] and changes == [True]
        assert _gauge("watch-test") == 1.0

        stalled.clear()
        await _until(lambda: server.reports == [True, False, True])
        assert not watch.stale and changes == [True, False]
        assert _gauge("watch-test") == 0.0

        stop.set()
        await asyncio.wait_for(task, 5)
        stalled.append("posts")
        assert watch.check() is False  # a later check still sees the stall...
        assert server.reports == [True, False, True]  # ...but nothing is reported after stop

    asyncio.run(run())


def test_stalled_before_ready_is_stale_and_never_serving() -> None:
    """A consumer that cannot reach the broker during its initial replay: never SERVING, and the
    answers it gives meanwhile are flagged."""
    ready = threading.Event()
    watch = StallWatch("watch-test-2", lambda: ["posts"], ready=ready.is_set, interval_s=0.01)
    server, stop = FakeServer(), threading.Event()

    async def run() -> None:
        task = watch.start(server, stop)
        await _until(lambda: watch.stale)
        ready.set()
        await asyncio.sleep(0.05)
        assert server.reports == []
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
