"""Deadline-aware admission, shared by every gRPC service (the Phoenix ranker and retrieval,
Thunder, home_mixer).

A request is accepted only if it can finish before its deadline: its own cost is estimated from
its size (a measured per-unit time, `LinearCost`), the work already accepted ahead of it from the
`Backlog` of accepted-but-unfinished requests, and `ahead + own` (with a slack factor and a
margin) is compared with the time left. A request that cannot make it is shed at once
(`ShedError`, gRPC RESOURCE_EXHAUSTED) instead of queueing and failing at its deadline after
taking its share of the server; so under overload the accepted requests still finish in time and
the rest get a fast answer the caller can act on (fail over, degrade).

The per-request costs are measured without the waits, so the sum of the work ahead misses what
concurrency adds (thread hand-offs, CPU and GIL contention, a caller thread starved before it
hands its work over); the backlog therefore also compares how long each accepted request actually
waited for its turn with the work ahead predicted when it was accepted, and scales the work ahead
of new requests by that ratio (never below 1), which closes the loop under sustained overload.

`AsyncAdmission` packages the three for grpc.aio services (Thunder, home_mixer): admission, then
a turn among `max_in_flight` in FIFO order, each turn timed to keep the estimates current.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge

T = TypeVar("T")

DECISIONS = Counter(
    "foryou_admission_requests_total",
    "Admission decisions: admitted, or shed (refused at once: it could not finish before its deadline)",
    ["service", "outcome"],
)
BACKLOG_SECONDS = Gauge(
    "foryou_admission_backlog_seconds",
    "Estimated seconds of accepted work not yet done (what a new request would wait for)",
    ["service"],
)
CORRECTION = Gauge(
    "foryou_admission_correction",
    "Measured / estimated wait of accepted requests for their turn (>= 1), applied to new estimates",
    ["service"],
)
COST_PER_UNIT = Gauge(
    "foryou_admission_cost_per_unit_seconds",
    "Measured seconds per unit of request size (EWMA) used to estimate a request's cost",
    ["service", "part"],
)


class OverloadedError(RuntimeError):
    """No capacity for the request (gRPC RESOURCE_EXHAUSTED)."""


class ShedError(OverloadedError):
    """The request cannot finish within its deadline given the work ahead of it: refused at once
    (gRPC RESOURCE_EXHAUSTED)."""


class LinearCost:
    """seconds ≈ per_unit_s × (units + fixed_units), per_unit_s an EWMA of measured requests.

    One rate instead of a two-parameter fit: `fixed_units` stands for the per-request overhead (a
    ranking request's history encoding ≈ 128 candidates), so mixed request sizes stay within the
    slack the admission check adds. Updates are plain float stores (the GIL keeps them whole; a
    lost update between two threads only delays learning by one sample)."""

    def __init__(self, per_unit_s: float, fixed_units: float, alpha: float, service: str, part: str) -> None:
        self.per_unit_s = per_unit_s
        self.fixed_units = fixed_units
        self.alpha = alpha
        self.samples = 0
        self._gauge = COST_PER_UNIT.labels(service, part)
        self._gauge.set(per_unit_s)

    def estimate(self, units: float) -> float:
        return self.per_unit_s * (units + self.fixed_units)

    def observe(self, seconds: float, units: float) -> None:
        sample = seconds / (units + self.fixed_units)
        # the configured rate is only a guess for another machine or model: the first measurement
        # replaces it, later ones move the average
        alpha = self.alpha if self.samples else 1.0
        self.per_unit_s += alpha * (sample - self.per_unit_s)
        self.samples += 1
        self._gauge.set(self.per_unit_s)

    def observe_at_least(self, seconds: float, units: float) -> None:
        """A request cut short (deadline) took at least `seconds`: learn from it only when that is
        more than the estimate, so a run of underestimated requests cannot keep failing."""
        if seconds > self.estimate(units):
            self.observe(seconds, units)

    def observe_run(self, ticket: Ticket, completed: bool) -> None:
        """Learn from the ticket's run on the contended resource (`work_units` of work), if it
        had one: a measurement when it completed, a lower bound when it was cut short."""
        run = ticket.serial_run_s
        if run is not None and ticket.work_units:
            (self.observe if completed else self.observe_at_least)(run, ticket.work_units)


@dataclass(eq=False, slots=True)
class Ticket:
    """One accepted request: `serial_s` = estimated seconds it needs of the contended resource (the
    ranker's compute thread, the retrieval workers), `own_s` = its whole estimated cost. The owner
    marks when it was handed to that resource, started on it and finished there."""

    serial_s: float
    own_s: float
    accepted_at: float
    submitted_at: float | None = None
    started_at: float | None = None  # from here its remaining serial work shrinks
    finished_at: float | None = None
    work_units: float = 0  # size of the work actually done (e.g. candidates not in the cache)
    predicted_wait_s: float = 0.0  # work ahead of it when it was accepted

    def submit(self) -> None:
        self.submitted_at = time.monotonic()

    def start(self) -> None:
        self.started_at = time.monotonic()

    def finish(self) -> None:
        self.finished_at = time.monotonic()

    def remaining(self, now: float) -> float:
        if self.finished_at is not None:
            return 0.0
        if self.started_at is None:
            return self.serial_s
        return max(self.serial_s - (now - self.started_at), 0.0)

    @property
    def serial_wait_s(self) -> float:
        """Time spent waiting for the contended resource (not part of the request's own cost)."""
        if self.submitted_at is None or self.started_at is None:
            return 0.0
        return self.started_at - self.submitted_at

    @property
    def serial_run_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


MAX_CORRECTION = 4.0  # beyond this the estimates are wrong, not slow: keep serving something


class Backlog:
    """The requests accepted and not finished, and the admission decision against them."""

    def __init__(
        self,
        service: str,
        parallelism: int = 1,
        slack: float = 0.5,
        margin_s: float = 0.005,
        alpha: float = 0.2,
    ) -> None:
        self.service = service
        self.parallelism = max(parallelism, 1)
        self.slack = slack  # proportional safety on the estimate (mixed sizes, noise)
        self.margin_s = margin_s  # fixed safety: transport, scheduling
        self.alpha = alpha
        self._lock = threading.Lock()
        self._tickets: set[Ticket] = set()
        # EWMAs of the actual and predicted waits of accepted requests that queued (averages of
        # each, not of their ratios, so long waits weigh more than tiny ones)
        self._actual = 0.0
        self._predicted = 0.0
        self._gauge = BACKLOG_SECONDS.labels(service)
        self._correction_gauge = CORRECTION.labels(service)
        self._correction_gauge.set(1.0)

    def __len__(self) -> int:
        return len(self._tickets)

    def _ahead(self, now: float) -> float:
        return sum(t.remaining(now) for t in self._tickets) / self.parallelism

    def ahead_s(self) -> float:
        with self._lock:
            return self._ahead(time.monotonic())

    @property
    def correction(self) -> float:
        """Measured / predicted wait of accepted requests, in [1, MAX_CORRECTION]."""
        if self._predicted <= 0.0:
            return 1.0
        return min(max(self._actual / self._predicted, 1.0), MAX_CORRECTION)

    def needed_s(self, ahead_s: float, own_s: float) -> float:
        """Seconds from now the request is expected to need, with the safety slack and margin."""
        return (ahead_s * self.correction + own_s) * (1.0 + self.slack) + self.margin_s

    def admit(self, own_s: float, serial_s: float, deadline: float | None, max_wait_s: float) -> Ticket:
        """Accept the request or raise ShedError. With a deadline (time.monotonic()) it must be
        able to finish before it; without one, at most `max_wait_s` of work may be ahead of it."""
        with self._lock:
            now = time.monotonic()
            ahead = self._ahead(now)
            if deadline is not None:
                need, left = self.needed_s(ahead, own_s), deadline - now
                if need > left:
                    DECISIONS.labels(self.service, "shed").inc()
                    raise ShedError(
                        f"{self.service}: cannot finish before the deadline: ~{need * 1e3:.0f} ms needed "
                        f"({ahead * 1e3:.0f} ms of work ahead, {own_s * 1e3:.0f} ms its own), "
                        f"{max(left, 0.0) * 1e3:.0f} ms left"
                    )
            elif ahead * self.correction > max_wait_s:
                DECISIONS.labels(self.service, "shed").inc()
                raise ShedError(
                    f"{self.service}: {ahead * 1e3:.0f} ms of work queued, more than the "
                    f"{max_wait_s * 1e3:.0f} ms a request without a deadline may wait"
                )
            DECISIONS.labels(self.service, "admitted").inc()
            t = Ticket(serial_s, own_s, now, predicted_wait_s=ahead)
            self._tickets.add(t)
            self._gauge.set(ahead + serial_s / self.parallelism)
            return t

    def finish(self, ticket: Ticket, completed: bool = False) -> None:
        """The request left: answered (`completed`), failed or abandoned. How long it waited for
        its turn calibrates the estimates of the work ahead; a request that failed before its turn
        came (typically: its deadline passed while it waited) waited at least until now, and
        counts too, so misses push the estimates up instead of being left out."""
        with self._lock:
            self._tickets.discard(ticket)
            now = time.monotonic()
            waited: float | None = None
            if ticket.started_at is not None:
                waited = ticket.started_at - ticket.accepted_at
            elif not completed:
                waited = now - ticket.accepted_at
            # (completed without a turn: all served from a cache, no evidence either way)
            if waited is not None and ticket.predicted_wait_s > 0.0:
                a = self.alpha if self._predicted > 0.0 else 1.0
                self._actual += a * (waited - self._actual)
                self._predicted += a * (ticket.predicted_wait_s - self._predicted)
                self._correction_gauge.set(self.correction)
            self._gauge.set(self._ahead(now))


@dataclass(slots=True)
class AdmissionConfig:
    """Admission of a grpc.aio service (`AsyncAdmission`); one per service config."""

    # requests doing their work at once; the others wait for a turn in arrival order. 1 for
    # synchronous work on one thread (Thunder); more where the work awaits I/O (home_mixer)
    max_in_flight: int = 4
    # without a client deadline: refused when more than this much estimated work is ahead of it
    max_wait_s: float = 1.0
    # accepted only if (work ahead x measured correction + own estimated cost) x (1 + cost_slack)
    # + margin_s fits in the time left before the deadline
    cost_slack: float = 0.5
    margin_s: float = 0.005
    cost_alpha: float = 0.2  # EWMA weight of each measured request
    # first estimate of a request of `units` 0 (replaced by the first measurement); a request of n
    # units costs per_unit x (n + fixed_units), per_unit = initial_cost_s / fixed_units
    initial_cost_s: float = 0.01
    fixed_units: float = 1.0


class AsyncAdmission:
    """Deadline-aware admission and FIFO turns for a grpc.aio service. Two ways to run the work:

        async with admission.admitted(deadline, units):  # on the event loop (home_mixer: the
            ...                                           # work awaits I/O, so it interleaves)
        await admission.call(deadline, units, fn, *args)  # on a worker thread (Thunder: the work
                                                          # is synchronous)

    A request that cannot finish before its deadline behind the work already accepted is refused
    at once (ShedError); an accepted one waits for one of `max_in_flight` turns in arrival order
    (refused after all if its turn comes too late to finish), and each turn is timed to keep the
    per-unit cost and the backlog's correction current.

    Why a worker thread for synchronous work: grpc.aio takes in new calls on the event loop, one
    or two loop iterations per call, so a handler that computes on the loop without awaiting lets
    in one new call per request it serves; under overload the calls then queue inside gRPC, out of
    admission's sight, until their deadlines pass (measured: 36% DEADLINE_EXCEEDED, the sheds
    answered at the deadline). On a thread the loop keeps taking calls in and sheds at once.
    Call from one event loop only."""

    def __init__(
        self, service: str, config: AdmissionConfig | None = None, executor: Executor | None = None
    ) -> None:
        """`executor`: where `call` runs the work; None = a pool of `max_in_flight` threads made on
        first use."""
        self.service = service
        self.config = c = config or AdmissionConfig()
        if c.fixed_units <= 0:
            raise ValueError("fixed_units must be positive")
        self.backlog = Backlog(service, c.max_in_flight, c.cost_slack, c.margin_s, c.cost_alpha)
        self.cost = LinearCost(
            c.initial_cost_s / c.fixed_units, c.fixed_units, c.cost_alpha, service, "request"
        )
        self._free = max(c.max_in_flight, 1)
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._executor = executor

    def _admit(self, deadline: float | None, units: float) -> Ticket:
        own = self.cost.estimate(units)
        ticket = self.backlog.admit(own, own, deadline, self.config.max_wait_s)
        ticket.work_units = units
        ticket.submit()
        return ticket

    def _done(self, ticket: Ticket, ok: bool) -> None:
        """The request left the backlog; a run it had teaches the cost estimate."""
        self.backlog.finish(ticket, completed=ok)
        run = ticket.serial_run_s  # None: shed before its turn, nothing learnt
        if run is not None:
            (self.cost.observe if ok else self.cost.observe_at_least)(run, ticket.work_units)

    @asynccontextmanager
    async def admitted(self, deadline: float | None, units: float = 0.0) -> AsyncIterator[Ticket]:
        """Admission, then a turn, for work done inside the block on the event loop
        (`deadline`: time.monotonic(), None = none). Raises ShedError when it cannot finish in
        time. The turn yields to the loop once before the block starts, so calls that arrived
        meanwhile are admitted (or shed) against it."""
        ticket = self._admit(deadline, units)
        ok = False
        try:
            await self._turn(ticket, deadline)
            ticket.start()
            try:
                yield ticket
                ok = True
            finally:
                ticket.finish()
                self._release()
        finally:
            self._done(ticket, ok)

    async def call(self, deadline: float | None, units: float, fn: Callable[..., T], *args: Any) -> T:
        """Admission, then a turn, then `fn(*args)` on a worker thread; its result (or exception).
        Raises ShedError when it cannot finish in time. The turn ends when `fn` returns, even if
        the caller was cancelled meanwhile (a thread cannot be stopped), so at most
        `max_in_flight` calls ever run at once."""
        ticket = self._admit(deadline, units)
        try:
            await self._turn(ticket, deadline, yield_first=False)
        except BaseException:
            self._done(ticket, False)
            raise

        def run() -> T:
            ticket.start()
            try:
                return fn(*args)
            finally:
                ticket.finish()

        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max(self.config.max_in_flight, 1), thread_name_prefix=self.service
            )
        job = asyncio.get_running_loop().run_in_executor(self._executor, run)

        def finished(f: asyncio.Future[T]) -> None:
            self._release()
            self._done(ticket, not f.cancelled() and f.exception() is None)

        job.add_done_callback(finished)
        return await asyncio.shield(job)

    async def _turn(self, ticket: Ticket, deadline: float | None, yield_first: bool = True) -> None:
        """Wait for a turn (FIFO); ShedError when it would come too late to finish in time."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            if yield_first:
                try:  # calls that arrived meanwhile queue behind this one
                    await asyncio.sleep(0)
                except BaseException:
                    self._release()
                    raise
            return
        # the latest start that still leaves time for its own work
        if deadline is None:
            wait = self.config.max_wait_s
        else:
            wait = deadline - time.monotonic() - self.backlog.needed_s(0.0, ticket.own_s)
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(turn)
        timer = loop.call_later(max(wait, 0.0), _expire, turn)
        try:
            got = await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.result():
                self._release()  # handed a turn it will not use
            raise
        finally:
            timer.cancel()
            if turn in self._waiters:
                self._waiters.remove(turn)
        if not got:
            DECISIONS.labels(self.service, "shed").inc()
            raise ShedError(
                f"{self.service}: no turn came in time to finish before the deadline "
                f"({self.config.max_in_flight} in flight, {len(self._waiters)} waiting)"
            )

    def _release(self) -> None:
        """Hand the turn to the longest waiter still waiting, else free it."""
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(True)
                return
        self._free += 1


def _expire(turn: asyncio.Future[bool]) -> None:
    if not turn.done():
        turn.set_result(False)
