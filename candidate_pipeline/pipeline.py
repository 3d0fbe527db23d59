"""The pipeline runner: the reference's execution order and concurrency, fail-open everywhere,
plus per-component timeouts and a per-request deadline."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from candidate_pipeline import metrics as m
from candidate_pipeline.components import (
    Component,
    Filter,
    Hydrator,
    QueryHydrator,
    Scorer,
    Selector,
    SideEffect,
    Source,
)
from candidate_pipeline.result import ComponentTrace, PipelineResult, Removed, StageTrace

log = logging.getLogger(__name__)
Q = TypeVar("Q")
C = TypeVar("C")


class LengthMismatch(Exception):
    pass


@dataclass(slots=True)
class PipelineConfig:
    component_timeout_s: float | None = 1.0  # default for components without their own timeout_s
    request_deadline_s: float | None = 2.0
    enable_post_selection_backfill: bool = False


class CandidatePipeline(Generic[Q, C]):
    """Declare the stages as lists; `execute(query)` runs them. Subclasses usually set the lists in
    `__init__` (one component per file, names ending in their role)."""

    def __init__(
        self,
        *,
        query_hydrators: Sequence[QueryHydrator[Q]] = (),
        dependent_query_hydrators: Sequence[QueryHydrator[Q]] = (),
        sources: Sequence[Source[Q, C]] = (),
        hydrators: Sequence[Hydrator[Q, C]] = (),
        filters: Sequence[Filter[Q, C]] = (),
        scorers: Sequence[Scorer[Q, C]] = (),
        selector: Selector[Q, C] | None = None,
        post_selection_hydrators: Sequence[Hydrator[Q, C]] = (),
        post_selection_filters: Sequence[Filter[Q, C]] = (),
        side_effects: Sequence[SideEffect[Q, C]] = (),
        result_size: int,
        config: PipelineConfig | None = None,
    ) -> None:
        self.query_hydrators = list(query_hydrators)
        self.dependent_query_hydrators = list(dependent_query_hydrators)
        self.sources = list(sources)
        self.hydrators = list(hydrators)
        self.filters = list(filters)
        self.scorers = list(scorers)
        self.selector = selector
        self.post_selection_hydrators = list(post_selection_hydrators)
        self.post_selection_filters = list(post_selection_filters)
        self.side_effects = list(side_effects)
        self.result_size = result_size
        self.config = config or PipelineConfig()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def name(self) -> str:
        return type(self).__name__

    def components(self) -> dict[str, list[str]]:
        stages: dict[str, Sequence[Component]] = {
            "query_hydrator": self.query_hydrators,
            "dependent_query_hydrator": self.dependent_query_hydrators,
            "source": self.sources,
            "hydrator": self.hydrators,
            "filter": self.filters,
            "scorer": self.scorers,
            "selector": [self.selector] if self.selector else [],
            "post_selection_hydrator": self.post_selection_hydrators,
            "post_selection_filter": self.post_selection_filters,
            "side_effect": self.side_effects,
        }
        return {k: [c.name for c in v] for k, v in stages.items()}

    # ---- execution -------------------------------------------------------------------------

    async def execute(self, query: Q, request_id: str | None = None) -> PipelineResult[Q, C]:
        t0 = time.perf_counter()
        deadline = None if self.config.request_deadline_s is None else t0 + self.config.request_deadline_s
        run = _Run(self, deadline)
        res: PipelineResult[Q, C] = PipelineResult(
            query=query, request_id=request_id or uuid.uuid4().hex[:16]
        )

        await run.hydrate_query("query_hydrator", self.query_hydrators, query, res)
        if self.dependent_query_hydrators:
            await run.hydrate_query("dependent_query_hydrator", self.dependent_query_hydrators, query, res)
        candidates = await run.fetch(query, res)
        await run.hydrate("hydrator", self.hydrators, query, candidates, res)
        res.retrieved_count = len(candidates)
        candidates = await run.filter("filter", self.filters, query, candidates, res)
        for scorer in self.scorers:  # sequential: each sees earlier scorers' fields
            await run.hydrate("scorer", [scorer], query, candidates, res)
        selected, reserve = run.select(query, candidates, res)

        await run.hydrate("post_selection_hydrator", self.post_selection_hydrators, query, selected, res)
        selected = await run.filter(
            "post_selection_filter", self.post_selection_filters, query, selected, res
        )
        if self.config.enable_post_selection_backfill:
            while len(selected) < self.result_size and reserve:
                batch, reserve = (
                    reserve[: self.result_size - len(selected)],
                    reserve[self.result_size - len(selected) :],
                )
                await run.hydrate("post_selection_hydrator", self.post_selection_hydrators, query, batch, res)
                # slate-wide filters (conversation dedup) must see the whole slate again
                selected = await run.filter(
                    "post_selection_filter", self.post_selection_filters, query, selected + batch, res
                )
        res.selected = selected[: self.result_size]
        res.non_selected = reserve + selected[self.result_size :]
        res.latency_ms = (time.perf_counter() - t0) * 1000
        m.REQUEST_SECONDS.labels(self.name).observe(res.latency_ms / 1000)
        m.RESULT_SIZE.labels(self.name).observe(len(res.selected))
        log.info(
            "%s Summary: %s",
            self.name,
            res.summary(),
            extra={"request_id": res.request_id, "latency_ms": round(res.latency_ms, 2)},
        )
        self._launch_side_effects(query, res)
        return res

    def _launch_side_effects(self, query: Q, res: PipelineResult[Q, C]) -> None:
        for se in self.side_effects:
            if not _enabled(se, query):
                continue
            task = asyncio.get_running_loop().create_task(self._side_effect(se, query, res))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _side_effect(self, se: SideEffect[Q, C], query: Q, res: PipelineResult[Q, C]) -> None:
        timeout = se.timeout_s if se.timeout_s is not None else self.config.component_timeout_s
        try:
            await asyncio.wait_for(se.run(query, list(res.selected), list(res.non_selected)), timeout)
        except Exception as e:  # noqa: BLE001 - side effect errors are ignored by design
            kind = "timeout" if isinstance(e, TimeoutError) else "error"
            m.COMPONENT_ERRORS.labels(self.name, "side_effect", se.name, kind).inc()
            log.warning("side effect %s failed: %r", se.name, e, extra={"request_id": res.request_id})

    async def drain_side_effects(self, timeout_s: float = 5.0) -> None:
        """Wait for launched side effects (graceful shutdown, tests)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)


def _enabled(component: Component, query: Any) -> bool:
    try:
        return bool(component.enable(query))
    except Exception:  # noqa: BLE001 - a broken enable() disables the component
        log.exception("enable() of %s failed", component.name)
        return False


class _Run(Generic[Q, C]):
    """State of one execution: deadline, traces and the fail-open wrappers."""

    def __init__(self, pipeline: CandidatePipeline[Q, C], deadline: float | None) -> None:
        self.p = pipeline
        self.deadline = deadline

    def _timeout(self, component: Component) -> float | None:
        t = component.timeout_s if component.timeout_s is not None else self.p.config.component_timeout_s
        if self.deadline is not None:
            remaining = max(0.0, self.deadline - time.perf_counter())
            t = remaining if t is None else min(t, remaining)
        return t

    async def _call(
        self, stage: str, comp: Component, trace: ComponentTrace, fn: Callable[[], Awaitable[Any]]
    ) -> tuple[bool, Any]:
        t0 = time.perf_counter()
        try:
            out = await asyncio.wait_for(fn(), self._timeout(comp))
            ok = True
        except Exception as e:  # noqa: BLE001 - fail open
            kind = "timeout" if isinstance(e, TimeoutError) else "error"
            trace.error = f"{kind}: {e!r}" if kind == "error" else "timeout"
            m.COMPONENT_ERRORS.labels(self.p.name, stage, comp.name, kind).inc()
            log.warning("%s %s failed open: %s", stage, comp.name, trace.error)
            out, ok = None, False
        trace.latency_ms = (time.perf_counter() - t0) * 1000
        m.COMPONENT_SECONDS.labels(self.p.name, stage, comp.name).observe(trace.latency_ms / 1000)
        return ok, out

    def _stage(
        self, res: PipelineResult[Q, C], stage: str, comps: Sequence[Component], query: Q
    ) -> tuple[StageTrace, list[Component], float]:
        enabled = [c for c in comps if _enabled(c, query)]
        st = StageTrace(stage=stage, total=len(comps), enabled=len(enabled))
        res.stages.append(st)
        return st, enabled, time.perf_counter()

    def _end(self, st: StageTrace, t0: float, size: int) -> None:
        st.latency_ms = (time.perf_counter() - t0) * 1000
        st.size = size
        m.STAGE_SECONDS.labels(self.p.name, st.stage).observe(st.latency_ms / 1000)

    async def hydrate_query(
        self, stage: str, comps: Sequence[QueryHydrator[Q]], query: Q, res: PipelineResult[Q, C]
    ) -> None:
        st, enabled, t0 = self._stage(res, stage, comps, query)
        traces = [ComponentTrace(stage, c.name) for c in enabled]
        outs = await asyncio.gather(
            *[
                self._call(stage, c, tr, lambda c=c: c.hydrate(query))
                for c, tr in zip(enabled, traces, strict=True)
            ]
        )
        for c, tr, (ok, partial) in zip(enabled, traces, outs, strict=True):  # merge in list order
            if ok:
                try:
                    c.update(query, partial)
                    tr.output_count = 1
                except Exception as e:  # noqa: BLE001
                    tr.error = f"update: {e!r}"
                    m.COMPONENT_ERRORS.labels(self.p.name, stage, c.name, "error").inc()
        st.components = traces
        self._end(st, t0, 0)

    async def fetch(self, query: Q, res: PipelineResult[Q, C]) -> list[C]:
        st, enabled, t0 = self._stage(res, "source", self.p.sources, query)
        traces = [ComponentTrace("source", c.name) for c in enabled]
        outs = await asyncio.gather(
            *[
                self._call("source", c, tr, lambda c=c: c.get_candidates(query))
                for c, tr in zip(enabled, traces, strict=True)
            ]
        )
        candidates: list[C] = []
        for tr, (ok, got) in zip(traces, outs, strict=True):
            if ok and got:
                tr.output_count = len(got)
                candidates.extend(got)
        st.components = traces
        self._end(st, t0, len(candidates))
        return candidates

    async def hydrate(
        self,
        stage: str,
        comps: Sequence[Hydrator[Q, C]],
        query: Q,
        candidates: list[C],
        res: PipelineResult[Q, C],
    ) -> None:
        st, enabled, t0 = self._stage(res, stage, comps, query)
        if not candidates:
            enabled = []
        traces = [ComponentTrace(stage, c.name, input_count=len(candidates)) for c in enabled]
        view = tuple(candidates)  # every hydrator of the stage sees the same input
        outs = await asyncio.gather(
            *[
                self._call(stage, c, tr, lambda c=c: c.hydrate(query, view))
                for c, tr in zip(enabled, traces, strict=True)
            ]
        )
        for c, tr, (ok, results) in zip(enabled, traces, outs, strict=True):
            if not ok:
                continue
            if results is None or len(results) != len(view):
                got = None if results is None else len(results)
                tr.error = f"length_mismatch expected={len(view)} got={got}"
                m.COMPONENT_ERRORS.labels(self.p.name, stage, c.name, "length_mismatch").inc()
                log.warning("%s %s %s", stage, c.name, tr.error)
                continue
            try:
                c.update_all(view, results)
            except Exception as e:  # noqa: BLE001
                tr.error = f"update: {e!r}"
                m.COMPONENT_ERRORS.labels(self.p.name, stage, c.name, "error").inc()
                continue
            failed = sum(1 for r in results if isinstance(r, BaseException))
            tr.output_count = len(view) - failed
        st.components += traces
        self._end(st, t0, len(candidates))

    async def filter(
        self,
        stage: str,
        comps: Sequence[Filter[Q, C]],
        query: Q,
        candidates: list[C],
        res: PipelineResult[Q, C],
    ) -> list[C]:
        st, enabled, t0 = self._stage(res, stage, comps, query)
        for f in enabled:
            tr = ComponentTrace(stage, f.name, input_count=len(candidates))
            ft0 = time.perf_counter()
            try:
                out = f.filter(query, candidates)
                if inspect.isawaitable(out):
                    out = await asyncio.wait_for(out, self._timeout(f))
                kept, removed = out
                if len(kept) + len(removed) != len(candidates):
                    raise LengthMismatch(f"kept+removed={len(kept) + len(removed)} input={len(candidates)}")
            except Exception as e:  # noqa: BLE001 - a failing filter is skipped; input restored
                kind = "timeout" if isinstance(e, TimeoutError) else "error"
                tr.error = f"{kind}: {e!r}"
                m.COMPONENT_ERRORS.labels(self.p.name, stage, f.name, kind).inc()
                log.warning("%s %s failed open: %s", stage, f.name, tr.error)
                kept, removed = candidates, []
            tr.latency_ms = (time.perf_counter() - ft0) * 1000
            tr.output_count, tr.removed = len(kept), len(removed)
            m.COMPONENT_SECONDS.labels(self.p.name, stage, f.name).observe(tr.latency_ms / 1000)
            res.filtered.extend(Removed(c, f.name) for c in removed)
            candidates = list(kept)
            st.components.append(tr)
        self._end(st, t0, len(candidates))
        return candidates

    def select(self, query: Q, candidates: list[C], res: PipelineResult[Q, C]) -> tuple[list[C], list[C]]:
        sel = self.p.selector
        st, enabled, t0 = self._stage(res, "selector", [sel] if sel else [], query)
        if not enabled or sel is None:
            self._end(st, t0, len(candidates))
            return candidates, []
        tr = ComponentTrace("selector", sel.name, input_count=len(candidates))
        try:
            selected, rest = sel.select(query, candidates)
        except Exception as e:  # noqa: BLE001
            tr.error = f"error: {e!r}"
            m.COMPONENT_ERRORS.labels(self.p.name, "selector", sel.name, "error").inc()
            selected, rest = candidates, []
        tr.output_count, tr.removed = len(selected), len(rest)
        st.components.append(tr)
        self._end(st, t0, len(selected))
        return list(selected), list(rest)
