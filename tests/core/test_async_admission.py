"""foryou/core/admission.py's AsyncAdmission (Thunder's and home_mixer's admission) without servers:
turns in arrival order and never more than max_in_flight, a request shed at once when the work
ahead cannot fit its deadline, a waiter shed when its turn would come too late, turns given back
by cancelled waiters, and `call` holding its turn until the worker thread is done."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from foryou.core.admission import AdmissionConfig, AsyncAdmission, ShedError


def _admission(max_in_flight: int = 1, cost_s: float = 0.01) -> AsyncAdmission:
    return AsyncAdmission(
        "test", AdmissionConfig(max_in_flight=max_in_flight, initial_cost_s=cost_s, margin_s=0.0)
    )


def test_turns_in_arrival_order_at_most_max_in_flight() -> None:
    adm = _admission(max_in_flight=2)
    order: list[int] = []
    running = {"now": 0, "most": 0}

    async def request(i: int) -> None:
        async with adm.admitted(None):
            order.append(i)
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
            await asyncio.sleep(0.01)
            running["now"] -= 1

    async def go() -> None:
        await asyncio.gather(*[request(i) for i in range(6)])

    asyncio.run(go())
    assert order == list(range(6))
    assert running["most"] == 2
    assert adm.cost.samples == 6  # every turn measured


def test_shed_at_once_when_the_work_ahead_cannot_fit_the_deadline() -> None:
    adm = _admission(cost_s=0.1)

    async def go() -> tuple[int, float]:
        async def hold() -> None:
            async with adm.admitted(None):
                await asyncio.sleep(0.3)

        holders = [asyncio.create_task(hold()) for _ in range(3)]  # ~0.3 s of estimated work
        await asyncio.sleep(0)
        t0 = time.monotonic()
        with pytest.raises(ShedError, match="cannot finish before the deadline"):
            async with adm.admitted(time.monotonic() + 0.25):
                pass
        shed_after = time.monotonic() - t0
        await asyncio.gather(*holders)
        return len(adm.backlog), shed_after

    left, shed_after = asyncio.run(go())
    assert left == 0
    assert shed_after < 0.05  # refused without waiting


def test_a_waiter_whose_turn_comes_too_late_is_shed_before_its_deadline() -> None:
    """The estimate (10 ms a request) lets the second request in, but the first holds its turn for
    0.5 s: the second is refused when it could no longer finish, not at its deadline."""
    adm = _admission(cost_s=0.01)

    async def go() -> float:
        async def hold() -> None:
            async with adm.admitted(None):
                await asyncio.sleep(0.5)

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.01)
        deadline = time.monotonic() + 0.2
        with pytest.raises(ShedError, match="no turn came in time"):
            async with adm.admitted(deadline):
                pass
        early = deadline - time.monotonic()
        await holder
        return early

    assert asyncio.run(go()) > 0


def test_a_cancelled_waiter_gives_back_its_turn() -> None:
    adm = _admission()

    async def go() -> list[str]:
        seen: list[str] = []

        async def request(name: str, hold_s: float) -> None:
            async with adm.admitted(None):
                seen.append(name)
                await asyncio.sleep(hold_s)

        first = asyncio.create_task(request("first", 0.05))
        await asyncio.sleep(0)
        second = asyncio.create_task(request("second", 0))
        third = asyncio.create_task(request("third", 0))
        await asyncio.sleep(0.01)
        second.cancel()  # waiting for its turn
        await asyncio.gather(first, third)
        with pytest.raises(asyncio.CancelledError):
            await second
        return seen

    assert asyncio.run(go()) == ["first", "third"]
    assert len(adm.backlog) == 0


def test_call_runs_on_a_thread_and_keeps_its_turn_until_the_thread_is_done() -> None:
    """A caller cancelled while its work runs does not free the turn early: the next call's work
    starts only after the first one's returned."""
    adm = _admission()
    spans: dict[str, tuple[float, float, str]] = {}

    def work(name: str, seconds: float) -> str:
        t0 = time.monotonic()
        time.sleep(seconds)
        spans[name] = (t0, time.monotonic(), threading.current_thread().name)
        return name

    async def go() -> str:
        first = asyncio.create_task(adm.call(None, 1, work, "first", 0.15))
        await asyncio.sleep(0.03)
        first.cancel()
        second = await adm.call(None, 1, work, "second", 0.0)
        with pytest.raises(asyncio.CancelledError):
            await first
        return second

    assert asyncio.run(go()) == "second"
    assert spans["second"][0] >= spans["first"][1]
    assert spans["first"][2].startswith("test") and spans["second"][2].startswith("test")
