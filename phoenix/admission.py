"""Deadline-aware admission shared by the ranker and retrieval servers.

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
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from prometheus_client import Gauge

BACKLOG_SECONDS = Gauge(
    "phoenix_admission_backlog_seconds",
    "Estimated seconds of accepted work not yet done (what a new request would wait for)",
    ["service"],
)
CORRECTION = Gauge(
    "phoenix_admission_correction",
    "Measured / estimated wait of accepted requests for their turn (>= 1), applied to new estimates",
    ["service"],
)
COST_PER_UNIT = Gauge(
    "phoenix_admission_cost_per_unit_seconds",
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
                    raise ShedError(
                        f"{self.service}: cannot finish before the deadline: ~{need * 1e3:.0f} ms needed "
                        f"({ahead * 1e3:.0f} ms of work ahead, {own_s * 1e3:.0f} ms its own), "
                        f"{max(left, 0.0) * 1e3:.0f} ms left"
                    )
            elif ahead * self.correction > max_wait_s:
                raise ShedError(
                    f"{self.service}: {ahead * 1e3:.0f} ms of work queued, more than the "
                    f"{max_wait_s * 1e3:.0f} ms a request without a deadline may wait"
                )
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
