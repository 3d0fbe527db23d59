"""Run one or more services in this process until SIGINT/SIGTERM, then stop them gracefully; and
the catch-up wait of services that serve from state rebuilt by a Kafka consumer thread (their
health follows foryou.core.stall_watch)."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from foryou.core import tls
from foryou.core.logs import setup_logging
from foryou.core.metrics import start_metrics_server
from foryou.core.settings import Settings

log = logging.getLogger(__name__)
CATCH_UP_POLL_S = 0.05  # how often the event loop looks at a consumer thread's caught-up flag


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def run_until_signal(
    services: Sequence[Service],
    on_started: Callable[[], Awaitable[None]] | None = None,
    stop_event: asyncio.Event | None = None,
) -> None:
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[Service] = []
    try:
        for s in services:
            await s.start()
            started.append(s)
        if on_started:
            await on_started()
        await stop.wait()
    finally:
        log.info("shutting down", extra={"services": [type(s).__name__ for s in started]})
        for s in reversed(started):
            try:
                await s.stop()
            except Exception:
                log.exception("stopping %s failed", type(s).__name__)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


class HealthReporter(Protocol):
    """The health side of a gRPC server (`foryou.core.grpc_server.GrpcServer`)."""

    async def set_serving(self, serving: bool) -> None: ...


async def wait_caught_up(caught_up: threading.Event, timeout_s: float, what: str) -> None:
    """Wait (without blocking the event loop) until `caught_up` is set; TimeoutError
    "<what> did not catch up" after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not caught_up.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not catch up")
        await asyncio.sleep(CATCH_UP_POLL_S)


def prepare(settings: Settings) -> Settings:
    """Logging and /metrics for a service process; its TLS files checked (foryou.core.tls)."""
    setup_logging(settings.log_level, settings.log_json)
    tls.check(settings)
    if settings.metrics_port:
        port = start_metrics_server(settings.metrics_port)
        log.info("metrics on /metrics", extra={"port": port})
    return settings
