"""The health of a service whose state a Kafka consumer keeps fresh (Thunder, the retrieval index,
the Redis ingesters). Checked every `consumer_health_interval_s`, never per request:

- not ready yet (replaying at start) -> NOT_SERVING;
- ready, but a consumer made no progress for `consumer_stall_s` (broker down, topic gone, stuck)
  -> NOT_SERVING and `stale` set: the service still answers, from the state it has, and flags its
  responses so home_mixer marks the feed degraded ("never SERVING with stale data");
- progressing again -> SERVING, `stale` cleared.

`stale` is a plain attribute: reading it is all a request pays."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Gauge

from foryou.core.serve import CATCH_UP_POLL_S, HealthReporter

log = logging.getLogger(__name__)

STALE = Gauge(
    "foryou_service_stale",
    "1 while a service's consumer has made no progress for consumer_stall_s: it answers from state "
    "it cannot refresh and reports NOT_SERVING",
    ["service"],
)


class StallWatch:
    """`stalled()` names what cannot progress ([] = all well); `ready()` says the initial replay is
    done. `on_change(stale)` runs (on the watching task) whenever `stale` flips."""

    def __init__(
        self,
        service: str,
        stalled: Callable[[], Sequence[str]],
        ready: Callable[[], bool] = lambda: True,
        interval_s: float = 2.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.service = service
        self._stalled = stalled
        self._ready = ready
        self.interval_s = interval_s
        self._on_change = on_change
        self.stale = False
        self.reasons: list[str] = []
        self.serving = False
        STALE.labels(service).set(0)

    @classmethod
    def of_posts_consumer(
        cls, service: str, consumer: Any, ready: Callable[[], bool], interval_s: float, handler: Any
    ) -> StallWatch:
        """A full-copy service fed by one `posts` consumer (Thunder, the retrieval index): stale
        while the consumer is stalled, and the flag mirrored on `handler.stale` (its answers)."""

        def mirror(stale: bool) -> None:
            handler.stale = stale

        return cls(
            service,
            lambda: ["posts"] if consumer.is_stalled() else [],
            ready=ready,
            interval_s=interval_s,
            on_change=mirror,
        )

    def check(self) -> bool:
        """One check; returns whether the service should report SERVING."""
        reasons = list(self._stalled())
        stale = bool(reasons)
        if stale != self.stale:
            if stale:
                log.warning(
                    "%s: no progress ingesting for consumer_stall_s; NOT_SERVING, state stale",
                    self.service,
                    extra={"service": self.service, "stalled": reasons},
                )
            else:
                log.info("%s: ingesting again; stale flag cleared", self.service)
            self.stale = stale
            STALE.labels(self.service).set(int(stale))
            if self._on_change is not None:
                self._on_change(stale)
        self.reasons = reasons
        return self._ready() and not stale

    def start(self, server: HealthReporter | None, stop: threading.Event) -> asyncio.Task[None]:
        """Check until `stop` is set, reporting each change of SERVING to `server`'s health. Keep the
        returned task: the event loop holds tasks only weakly."""
        return asyncio.get_running_loop().create_task(self._run(server, stop))

    async def _run(self, server: HealthReporter | None, stop: threading.Event) -> None:
        while not stop.is_set():
            serving = self.check()
            if stop.is_set():  # stopping: the server already reported NOT_SERVING
                return
            if serving != self.serving:
                self.serving = serving
                if server is not None:
                    await server.set_serving(serving)
            # until ready, look often: SERVING should follow the end of the replay closely
            await asyncio.sleep(self.interval_s if self.serving or self.stale else CATCH_UP_POLL_S)
