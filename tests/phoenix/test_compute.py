"""phoenix.compute: every call runs on the one compute thread, results and errors come back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from phoenix.compute import on_compute_thread, run_compute


def _whoami(x: int) -> tuple[int, int, bool]:
    return threading.get_ident(), x * 2, on_compute_thread()


def test_calls_from_many_threads_share_one_compute_thread() -> None:
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda x: run_compute(_whoami, x), range(20)))
    assert {r[0] for r in results} != {threading.get_ident()}
    assert len({r[0] for r in results}) == 1  # one thread ran them all
    assert [r[1] for r in results] == [2 * x for x in range(20)] and all(r[2] for r in results)
    assert not on_compute_thread()


def test_reentrant_call_runs_inline_and_errors_propagate() -> None:
    outer, (inner, _, _) = run_compute(lambda: (threading.get_ident(), run_compute(_whoami, 1)))
    assert outer == inner  # no deadlock: a nested call runs on the compute thread itself
    with pytest.raises(ZeroDivisionError):
        run_compute(lambda: 1 / 0)
