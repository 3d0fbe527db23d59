"""One thread runs the serving-time ranker computations of a process.

PyTorch's OpenMP backend keeps a team of worker threads per calling thread. Requests arriving on
many server threads therefore wake several teams that contend for the same cores: on the 2-core
machine one ranking request of 2,180 candidates takes ~40 ms when calls come from one thread and
~67 ms when they alternate between two (docs/perf/ranker.md). Funnelling the calls through one
thread keeps one team busy; concurrent model calls on a CPU gain nothing anyway (two concurrent
requests take as long as the same two in a row), and requests keep their own admission limits,
deadlines and caches on the caller's thread. The retrieval user tower (a few ms) stays on its
callers' threads so that it never queues behind a ranking request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_compute_thread = threading.local()


def _mark() -> None:
    _compute_thread.is_compute = True


def on_compute_thread() -> bool:
    return getattr(_compute_thread, "is_compute", False)


def run_compute(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn(*args, **kwargs)` on the process's compute thread and return its result (exceptions
    propagate). Called on the compute thread itself, it runs inline."""
    global _executor
    if on_compute_thread():
        return fn(*args, **kwargs)
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="torch-compute", initializer=_mark)
        ex = _executor
    return ex.submit(fn, *args, **kwargs).result()
