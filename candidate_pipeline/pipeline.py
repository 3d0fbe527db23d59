"""The pipeline runner: the reference's execution order and concurrency (candidate-pipeline, AUG),
fail-open everywhere, plus per-component timeouts and a per-request deadline."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from candidate_pipeline.context import _CURRENT, RequestContext
from candidate_pipeline.filter_result import FilterResult
from candidate_pipeline.result import ComponentTrace, PipelineResult, StageTrace
from candidate_pipeline.stage import Stage

log = logging.getLogger(__name__)
Q = TypeVar("Q")
C = TypeVar("C")


@dataclass(slots=True)
class PipelineConfig:
    # default for components that declare no timeout_s; None = no per-component timeout
    component_timeout_s: float | None = 1.0
    # every component's timeout is capped by the time left; None = no request deadline
    request_deadline_s: float | None = 2.0
    enable_post_selection_backfill: bool = False
    # per component class name; wins over the component's own timeout_s
    component_timeouts: dict[str, float] = field(default_factory=dict)


class CandidatePipeline(Generic[Q, C]):
    """Declare the stages as ordered lists plus `result_size`; `execute(query)` runs them.
    Subclasses usually call `super().__init__(...)` with their components (one per file)."""

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
        self._tasks: set[asyncio.Task[Any]] = set()  # keeps side-effect tasks from being collected

    @property
    def name(self) -> str:
        return type(self).__name__

    def components(self) -> dict[Stage, list[str]]:
        """Every stage's component names, in execution order (introspection / debug)."""
        stages: dict[Stage, Sequence[Component]] = {
            Stage.QUERY_HYDRATOR: self.query_hydrators,
            Stage.DEPENDENT_QUERY_HYDRATOR: self.dependent_query_hydrators,
            Stage.SOURCE: self.sources,
            Stage.HYDRATOR: self.hydrators,
            Stage.FILTER: self.filters,
            Stage.SCORER: self.scorers,
            Stage.SELECTOR: [self.selector] if self.selector else [],
            Stage.POST_SELECTION_HYDRATOR: self.post_selection_hydrators,
            Stage.POST_SELECTION_FILTER: self.post_selection_filters,
            Stage.SIDE_EFFECT: self.side_effects,
        }
        return {k: [c.name for c in v] for k, v in stages.items()}

    def result_size_for(self, query: Q) -> int:
        """Result size of this request (override for a per-query size)."""
        return self.result_size

    def finalize(self, query: Q, selected: list[C]) -> None:
        """Last in-place touch on the final slate before side effects (default: nothing)."""

    # ---- execution -------------------------------------------------------------------------

    async def execute(
        self, query: Q, request_id: str | None = None, deadline_s: float | None = None
    ) -> PipelineResult[Q, C]:
        """Run every stage; never raises for a component failure. `deadline_s` overrides the
        configured request deadline for this call (e.g. the caller's remaining gRPC deadline)."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        now = loop.time()
        if deadline_s is None:
            deadline_s = self.config.request_deadline_s
        ctx = RequestContext(
            request_id=request_id or uuid.uuid4().hex[:16],
            pipeline=self.name,
            started_at=now,
            deadline=None if deadline_s is None else now + deadline_s,
        )
        token = _CURRENT.set(ctx)
        try:
            res = await self._execute(query, _Run(self, ctx, loop))
            res.latency_ms = (time.perf_counter() - t0) * 1000
            m.child(m.REQUEST_SECONDS, self.name).observe(res.latency_ms / 1000)
            m.child(m.RESULT_SIZE, self.name).observe(len(res.selected))
            if not res.selected:
                m.child(m.RESULT_EMPTY, self.name).inc()
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s Summary: %s",
                    self.name,
                    res.summary(),
                    extra={"request_id": ctx.request_id, "latency_ms": round(res.latency_ms, 2)},
                )
            self._launch_side_effects(query, res)  # inside the context: the tasks inherit it
        finally:
            _CURRENT.reset(token)
        return res

    async def _execute(self, query: Q, run: _Run[Q, C]) -> PipelineResult[Q, C]:
        res: PipelineResult[Q, C] = PipelineResult(query=query, request_id=run.ctx.request_id)
        run.res = res
        await run.hydrate_query(Stage.QUERY_HYDRATOR, self.query_hydrators, query)
        if self.dependent_query_hydrators:
            await run.hydrate_query(Stage.DEPENDENT_QUERY_HYDRATOR, self.dependent_query_hydrators, query)
        candidates = await run.fetch(query)
        await run.hydrate(Stage.HYDRATOR, self.hydrators, query, candidates)
        res.retrieved = list(candidates)
        res.retrieved_count = len(candidates)
        candidates = await run.filter(Stage.FILTER, self.filters, query, candidates)
        await run.hydrate(Stage.SCORER, self.scorers, query, candidates, sequential=True)
        selected, reserve = run.select(query, candidates)

        size = max(0, self.result_size_for(query))
        await run.hydrate(Stage.POST_SELECTION_HYDRATOR, self.post_selection_hydrators, query, selected)
        selected = await run.filter(Stage.POST_SELECTION_FILTER, self.post_selection_filters, query, selected)
        if self.config.enable_post_selection_backfill:
            while len(selected) < size and reserve:
                k = size - len(selected)
                batch, reserve = reserve[:k], reserve[k:]
                await run.hydrate(Stage.POST_SELECTION_HYDRATOR, self.post_selection_hydrators, query, batch)
                # slate-wide filters (conversation dedup) must see the whole slate again
                selected = await run.filter(
                    Stage.POST_SELECTION_FILTER, self.post_selection_filters, query, selected + batch
                )
        res.non_selected = reserve + selected[size:]
        res.selected = selected[:size]
        try:
            self.finalize(query, res.selected)
        except Exception:  # noqa: BLE001 - a broken finalize must not fail the request
            log.exception("%s finalize failed", self.name)
        return res

    # ---- side effects ----------------------------------------------------------------------

    def _launch_side_effects(self, query: Q, res: PipelineResult[Q, C]) -> None:
        enabled = [se for se in self.side_effects if _enabled(se, query)]
        if not enabled:
            return
        # snapshot the lists: the caller may reshape the result after execute returns
        selected, non_selected = tuple(res.selected), tuple(res.non_selected)
        loop = asyncio.get_running_loop()
        for se in enabled:
            task = loop.create_task(self._side_effect(se, query, selected, non_selected, res.request_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _side_effect(
        self,
        se: SideEffect[Q, C],
        query: Q,
        selected: Sequence[C],
        non_selected: Sequence[C],
        request_id: str,
    ) -> None:
        t0 = time.perf_counter()
        timeout = _component_timeout(se, self.config)  # not bound by the request deadline
        try:
            async with asyncio.timeout(timeout):
                out = se.run(query, selected, non_selected)
                if inspect.isawaitable(out):  # hooks may be plain functions too
                    await out
        except Exception as e:  # noqa: BLE001 - side effect errors are ignored by design
            kind = "timeout" if isinstance(e, TimeoutError) else "error"
            m.child(m.COMPONENT_ERRORS, self.name, Stage.SIDE_EFFECT, se.name, kind).inc()
            log.warning("side_effect %s failed: %s %r", se.name, kind, e, extra={"request_id": request_id})
        m.child(m.COMPONENT_SECONDS, self.name, Stage.SIDE_EFFECT, se.name).observe(time.perf_counter() - t0)

    @property
    def pending_side_effects(self) -> int:
        return len(self._tasks)

    async def drain_side_effects(self, timeout_s: float = 5.0) -> bool:
        """Wait for in-flight side effects (graceful shutdown, tests). True if none is left."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self._tasks:
            remaining = end - loop.time()
            if remaining <= 0:
                break
            await asyncio.wait(list(self._tasks), timeout=remaining)
        return not self._tasks


def _enabled(component: Component, query: Any) -> bool:
    try:
        return bool(component.enable(query))
    except Exception:  # noqa: BLE001 - a broken enable() disables the component
        log.exception("enable() of %s failed; component skipped", component.name)
        return False


def _component_timeout(component: Component, config: PipelineConfig) -> float | None:
    t = config.component_timeouts.get(component.name)
    if t is None:
        t = component.timeout_s if component.timeout_s is not None else config.component_timeout_s
    return t


def _as_list(xs: Any) -> list[Any]:
    return xs if type(xs) is list else list(xs)  # the common case costs no copy


def _discard(awaitable: Any) -> None:
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    elif isinstance(awaitable, asyncio.Future):
        awaitable.cancel()


class _Run(Generic[Q, C]):
    """State of one execution: context, traces and the fail-open wrappers."""

    def __init__(self, pipeline: CandidatePipeline[Q, C], ctx: RequestContext, loop: Any) -> None:
        self.p = pipeline
        self.name = pipeline.name
        self.ctx = ctx
        self.loop = loop
        self.res: PipelineResult[Q, C]

    # -- helpers

    def _when(self, comp: Component) -> float | None:
        """Absolute loop time by which `comp` must finish (its timeout capped by the deadline)."""
        t = _component_timeout(comp, self.p.config)
        when = None if t is None else self.loop.time() + t
        d = self.ctx.deadline
        if d is not None and (when is None or d < when):
            when = d
        return when

    def _fail(self, stage: Stage, comp: Component, tr: ComponentTrace, kind: str, detail: str) -> None:
        tr.error_kind = kind
        tr.error = kind if kind == "timeout" else f"{kind}: {detail}"
        m.child(m.COMPONENT_ERRORS, self.name, stage, comp.name, kind).inc()
        log.warning(
            "%s %s %s failed open: %s",
            self.name,
            stage,
            comp.name,
            tr.error,
            extra={"request_id": self.ctx.request_id},
        )

    async def _call(
        self, stage: Stage, comp: Component, tr: ComponentTrace, fn: Callable[..., Any], *args: Any
    ) -> tuple[bool, Any]:
        """Run one hook (sync or async) under its timeout; (ok, output). Never raises Exception."""
        t0 = time.perf_counter()
        try:
            out = fn(*args)
            if inspect.isawaitable(out):
                when = self._when(comp)
                if when is None:
                    out = await out
                elif when <= self.loop.time():  # deadline already passed: don't start the call
                    _discard(out)
                    raise TimeoutError("request deadline passed")
                else:
                    async with asyncio.timeout_at(when):
                        out = await out
            ok = True
        except Exception as e:  # noqa: BLE001 - fail open
            self._fail(stage, comp, tr, "timeout" if isinstance(e, TimeoutError) else "error", repr(e))
            out, ok = None, False
        tr.latency_ms = (time.perf_counter() - t0) * 1000
        m.child(m.COMPONENT_SECONDS, self.name, stage, comp.name).observe(tr.latency_ms / 1000)
        return ok, out

    async def _all(self, calls: list[Any]) -> list[tuple[bool, Any]]:
        if len(calls) == 1:  # no task needed for a single component
            return [await calls[0]]
        return list(await asyncio.gather(*calls))

    def _stage(self, stage: Stage, comps: Sequence[Component], query: Q) -> tuple[StageTrace, list[Any]]:
        enabled = [c for c in comps if _enabled(c, query)]
        st = StageTrace(stage=stage, total=len(comps), enabled=len(enabled))
        self.res.stages.append(st)
        return st, enabled

    def _end(self, st: StageTrace, t0: float, size: int) -> None:
        st.latency_ms = (time.perf_counter() - t0) * 1000
        st.size = size
        m.child(m.STAGE_SECONDS, self.name, st.stage).observe(st.latency_ms / 1000)
        m.child(m.STAGE_SIZE, self.name, st.stage).observe(size)

    # -- stages

    async def hydrate_query(self, stage: Stage, comps: Sequence[QueryHydrator[Q]], query: Q) -> None:
        t0 = time.perf_counter()
        st, enabled = self._stage(stage, comps, query)
        st.components = [ComponentTrace(stage, c.name) for c in enabled]
        # all run on the query as it was at stage start; updates are applied afterwards, in order
        outs = await self._all(
            [self._call(stage, c, tr, c.hydrate, query) for c, tr in zip(enabled, st.components, strict=True)]
        )
        for c, tr, (ok, partial) in zip(enabled, st.components, outs, strict=True):
            if not ok:
                continue
            try:
                c.update(query, partial)
                tr.output_count = 1
            except Exception as e:  # noqa: BLE001
                self._fail(stage, c, tr, "error", f"update: {e!r}")
        self._end(st, t0, 0)

    async def fetch(self, query: Q) -> list[C]:
        t0 = time.perf_counter()
        st, enabled = self._stage(Stage.SOURCE, self.p.sources, query)
        st.components = [ComponentTrace(Stage.SOURCE, c.name) for c in enabled]
        outs = await self._all(
            [
                self._call(Stage.SOURCE, c, tr, c.get_candidates, query)
                for c, tr in zip(enabled, st.components, strict=True)
            ]
        )
        candidates: list[C] = []
        for c, tr, (ok, got) in zip(enabled, st.components, outs, strict=True):
            if ok and got is not None:
                if type(got) is not list:
                    try:  # any iterable will do; anything else is a broken output (fail open)
                        got = list(got)
                    except Exception as e:  # noqa: BLE001
                        self._fail(Stage.SOURCE, c, tr, "error", f"bad output: {e!r}")
                        got = ()
                tr.output_count = len(got)
                candidates.extend(got)  # declaration order; no dedup here
            m.child(m.COMPONENT_CANDIDATES, self.name, Stage.SOURCE, c.name, "fetched").inc(tr.output_count)
        self._end(st, t0, len(candidates))
        return candidates

    async def hydrate(
        self,
        stage: Stage,
        comps: Sequence[Hydrator[Q, C]],
        query: Q,
        candidates: list[C],
        sequential: bool = False,
    ) -> None:
        """Hydrators (parallel on one snapshot, applied in order) or scorers (`sequential`)."""
        t0 = time.perf_counter()
        st, enabled = self._stage(stage, comps, query)
        if candidates and enabled:
            view = tuple(candidates)  # what every component of the stage sees
            n = len(view)
            st.components = [ComponentTrace(stage, c.name, input_count=n) for c in enabled]
            if sequential:
                for c, tr in zip(enabled, st.components, strict=True):
                    ok, results = await self._call(stage, c, tr, c.hydrate, query, view)
                    self._apply(stage, c, tr, view, ok, results)
            else:
                outs = await self._all(
                    [
                        self._call(stage, c, tr, c.hydrate, query, view)
                        for c, tr in zip(enabled, st.components, strict=True)
                    ]
                )
                for c, tr, (ok, results) in zip(enabled, st.components, outs, strict=True):
                    self._apply(stage, c, tr, view, ok, results)
        self._end(st, t0, len(candidates))

    def _apply(
        self, stage: Stage, c: Hydrator[Q, C], tr: ComponentTrace, view: tuple[C, ...], ok: bool, results: Any
    ) -> None:
        if not ok:
            return
        n = len(view)
        try:
            got = len(results)
        except TypeError:
            got = None
        if got != n:
            self._fail(stage, c, tr, "length_mismatch", f"length_mismatch expected={n} got={got}")
            return
        try:
            failed = c.update_all(view, results)
        except Exception as e:  # noqa: BLE001
            self._fail(stage, c, tr, "error", f"update: {e!r}")
            return
        tr.failed = failed or 0
        tr.output_count = n - tr.failed

    async def filter(
        self, stage: Stage, comps: Sequence[Filter[Q, C]], query: Q, candidates: list[C]
    ) -> list[C]:
        t0 = time.perf_counter()
        st, enabled = self._stage(stage, comps, query)
        removals = self.res.removals
        for f in enabled:
            tr = ComponentTrace(stage, f.name, input_count=len(candidates))
            st.components.append(tr)
            ok, out = await self._call(stage, f, tr, f.filter, query, candidates)
            part = self._partition(stage, f, tr, out, len(candidates)) if ok else None
            if part is None:  # failed open: the filter's input goes on unchanged
                part = FilterResult(candidates, [])
            tr.output_count, tr.removed = len(part.kept), len(part.removed)
            if part.removed:
                removals.append((f.name, part.removed))
            m.child(m.COMPONENT_CANDIDATES, self.name, stage, f.name, "kept").inc(tr.output_count)
            m.child(m.COMPONENT_CANDIDATES, self.name, stage, f.name, "removed").inc(tr.removed)
            candidates = part.kept
        self._end(st, t0, len(candidates))
        return candidates

    def _partition(
        self, stage: Stage, f: Filter[Q, C], tr: ComponentTrace, out: Any, n: int
    ) -> FilterResult[C] | None:
        """The filter's output as a FilterResult of lists, or None (recorded as a failure) when it
        is not a (kept, removed) pair of sized collections holding n candidates together. Checked,
        not trusted: a plain tuple or a pair of tuples still works, a broken filter fails open."""
        try:
            kept, removed = out
            if len(kept) + len(removed) != n:
                raise ValueError(f"kept+removed={len(kept) + len(removed)} != input={n}")
        except Exception as e:  # noqa: BLE001 - a broken output is discarded; input kept
            self._fail(stage, f, tr, "error", f"bad output: {e!r}")
            return None
        return FilterResult(_as_list(kept), _as_list(removed))

    def select(self, query: Q, candidates: list[C]) -> tuple[list[C], list[C]]:
        t0 = time.perf_counter()
        sel = self.p.selector
        st, enabled = self._stage(Stage.SELECTOR, [sel] if sel else [], query)
        if not enabled or sel is None:  # no selector: everything is selected
            self._end(st, t0, len(candidates))
            return candidates, []
        tr = ComponentTrace(Stage.SELECTOR, sel.name, input_count=len(candidates))
        st.components.append(tr)
        try:
            selected, rest = sel.select(query, candidates)
            if len(selected) + len(rest) != len(candidates):
                raise ValueError(f"selected+rest={len(selected) + len(rest)} != input={len(candidates)}")
        except Exception as e:  # noqa: BLE001 - fail open: keep the input order, select everything
            self._fail(Stage.SELECTOR, sel, tr, "error", repr(e))
            selected, rest = candidates, []
        tr.output_count, tr.removed = len(selected), len(rest)
        tr.latency_ms = (time.perf_counter() - t0) * 1000
        m.child(m.COMPONENT_SECONDS, self.name, Stage.SELECTOR, sel.name).observe(tr.latency_ms / 1000)
        self._end(st, t0, len(selected))
        return list(selected), list(rest)
