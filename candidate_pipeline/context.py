"""Per-request context: request id and deadline, visible to every component of the running request
(and its side effects) through a context variable, e.g. to size a client call's own timeout."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    pipeline: str
    started_at: float  # event-loop time
    deadline: float | None  # event-loop time; None = no request deadline

    def remaining_s(self) -> float | None:
        """Seconds left before the request deadline (never negative), None without a deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


_CURRENT: ContextVar[RequestContext | None] = ContextVar("candidate_pipeline_request", default=None)


def current_context() -> RequestContext | None:
    """The context of the pipeline request this code runs in, None outside a pipeline."""
    return _CURRENT.get()
