"""Run one or more services in this process until SIGINT/SIGTERM, then stop them gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from foryou.core.logs import setup_logging
from foryou.core.metrics import start_metrics_server
from foryou.core.settings import Settings

log = logging.getLogger(__name__)


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


def prepare(settings: Settings, needs_infra: bool = True) -> Settings:
    """Logging + /metrics, and the resolved Kafka/Redis addresses (unless the services started
    need neither, e.g. a ranking-only Phoenix)."""
    setup_logging(settings.log_level, settings.log_json)
    if settings.metrics_port:
        port = start_metrics_server(settings.metrics_port)
        log.info("metrics on /metrics", extra={"port": port})
    return settings.resolved() if needs_infra else settings
