"""`run_every`: run a job now and then once per period until told to stop (`foryou retrain
--every`). The stop is checked between runs only: a run is never cut off halfway by it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def run_every(
    run: Callable[[], object],
    every_s: float,
    stop: threading.Event,
    on_wait: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Call `run()` now and then `every_s` after each run's start (at once when a run took longer
    than the period: runs never overlap and no missed period is caught up twice), until `stop` is
    set. `on_wait(seconds)` is told before each wait. Returns the number of runs."""
    if every_s <= 0:
        raise ValueError("the period must be > 0")
    runs = 0
    while not stop.is_set():
        started = clock()
        run()
        runs += 1
        wait = started + every_s - clock()
        if stop.is_set():
            break
        if wait > 0:
            if on_wait is not None:
                on_wait(wait)
            stop.wait(wait)
    return runs
