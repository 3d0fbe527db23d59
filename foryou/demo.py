"""`foryou demo`: bring up the embedded infrastructure, show it healthy, bring it down."""

from __future__ import annotations

import time

from rich.console import Console

from foryou import infra
from foryou.settings import Settings


def run_demo(settings: Settings, console: Console) -> None:
    t0 = time.monotonic()
    with console.status("starting embedded Kafka broker and Redis…"):
        infra.up(settings)
    try:
        st = infra.status(settings)
        console.print(f"kafka {st['kafka_bootstrap']}: {st['kafka']}; redis {st['redis_url']}: {st['redis']}")
        if not st["healthy"]:
            raise SystemExit("infrastructure unhealthy")
    finally:
        infra.down(settings)
    console.print(f"demo finished in {time.monotonic() - t0:.1f}s")
