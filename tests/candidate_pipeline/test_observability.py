"""Traces, summary log line, Prometheus metrics, request context and side-effect lifecycle."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from candidate_pipeline import (
    CandidatePipeline,
    Filter,
    FilterResult,
    Hydrator,
    PipelineConfig,
    QueryHydrator,
    RequestContext,
    Scorer,
    Selector,
    SideEffect,
    Source,
    Stage,
    current_context,
)


@dataclass
class Q:
    note: str = ""


@dataclass(slots=True)
class C:
    id: int
    score: float | None = None
    flag: bool = False


class RangeSource(Source):
    def __init__(self, start: int, n: int) -> None:
        self.start, self.n = start, n

    async def get_candidates(self, query: Q) -> list[C]:
        return [C(i) for i in range(self.start, self.start + self.n)]


class FirstSource(RangeSource):
    pass


class SecondSource(RangeSource):
    pass


class DeadSource(Source):
    async def get_candidates(self, query: Q) -> list[C]:
        raise ConnectionError("thunder unavailable")


class ModFilter(Filter):
    def __init__(self, mod: int) -> None:
        self.mod = mod

    def filter(self, query: Q, candidates: list[C]) -> FilterResult[C]:
        return FilterResult(
            [c for c in candidates if c.id % self.mod], [c for c in candidates if c.id % self.mod == 0]
        )


class EvenFilter(ModFilter):
    def __init__(self) -> None:
        super().__init__(2)


class ThreeFilter(ModFilter):
    def __init__(self) -> None:
        super().__init__(3)


class FlagHydrator(Hydrator):
    def hydrate(self, query: Q, candidates: Sequence[C]) -> list[bool]:
        return [True] * len(candidates)

    def update(self, candidate: C, hydrated: bool) -> None:
        candidate.flag = hydrated


class IdScorer(Scorer):
    async def score(self, query: Q, candidates: Sequence[C]) -> list[float]:
        return [float(c.id) for c in candidates]

    def update(self, candidate: C, hydrated: float) -> None:
        candidate.score = hydrated


class TopScore(Selector):
    size = 5

    def score(self, candidate: C) -> float:
        return candidate.score if candidate.score is not None else math.nan


class NoteQueryHydrator(QueryHydrator):
    async def hydrate(self, query: Q) -> str:
        ctx = current_context()
        assert ctx is not None
        return ctx.request_id

    def update(self, query: Q, hydrated: str) -> None:
        query.note = hydrated


class TracePipeline(CandidatePipeline[Q, C]):
    def __init__(self, side_effects: Sequence[SideEffect] = (), **kw: object) -> None:
        super().__init__(
            query_hydrators=[NoteQueryHydrator()],
            sources=[FirstSource(0, 12), DeadSource(), SecondSource(100, 6)],
            hydrators=[FlagHydrator()],
            filters=[EvenFilter(), ThreeFilter()],
            scorers=[IdScorer()],
            selector=TopScore(),
            side_effects=side_effects,
            result_size=3,
            **kw,  # type: ignore[arg-type]
        )


def test_trace_records_fetched_kept_removed_and_errors() -> None:
    res = asyncio.run(TracePipeline().execute(Q(), request_id="req-1"))
    assert res.request_id == "req-1" and res.query.note == "req-1"
    src = res.stage(Stage.SOURCE)
    assert [(c.component, c.fetched, c.error_kind) for c in src.components] == [
        ("FirstSource", 12, ""),
        ("DeadSource", 0, "error"),
        ("SecondSource", 6, ""),
    ]
    assert src.size == 18 and res.retrieved_count == 18 and all(c.flag for c in res.retrieved)
    flt = res.stage(Stage.FILTER)
    # 0..11 + 100..105: evens out (9), then multiples of 3 among the odd rest (3, 9, 105)
    assert [(c.component, c.input_count, c.kept, c.removed) for c in flt.components] == [
        ("EvenFilter", 18, 9, 9),
        ("ThreeFilter", 9, 6, 3),
    ]
    assert res.filtered_by() == {"EvenFilter": 9, "ThreeFilter": 3}
    sel = res.stage(Stage.SELECTOR).components[0]
    assert (sel.input_count, sel.output_count, sel.removed) == (6, 5, 1)
    assert [c.id for c in res.selected] == [103, 101, 11]
    assert [c.id for c in res.non_selected] == [1, 7, 5]
    assert res.failed_components == ["DeadSource"]
    assert [s.stage for s in res.trace] == [
        "query_hydrator",
        "source",
        "hydrator",
        "filter",
        "scorer",
        "selector",
        "post_selection_hydrator",
        "post_selection_filter",
    ]
    d = res.as_dict()
    assert d["selected"] == 3 and d["filtered"] == 12 and d["failed_components"] == ["DeadSource"]
    assert d["stages"][1]["components"][1]["error"].startswith("error: ConnectionError")


def test_stage_labels_are_plain_strings_in_every_output() -> None:
    # Stage is a StrEnum: metric labels, the debug dict and the log line keep the old strings
    assert [str(s) for s in Stage] == [
        "query_hydrator",
        "dependent_query_hydrator",
        "source",
        "hydrator",
        "filter",
        "scorer",
        "selector",
        "post_selection_hydrator",
        "post_selection_filter",
        "side_effect",
    ]
    assert [s for s in Stage if s.is_filter] == ["filter", "post_selection_filter"]
    d = asyncio.run(TracePipeline().execute(Q())).as_dict()
    labels = [s["stage"] for s in d["stages"]] + [c["stage"] for s in d["stages"] for c in s["components"]]
    assert labels and all(type(x) is str for x in labels)
    assert json.loads(json.dumps(d))["stages"][3]["stage"] == "filter"


def test_one_summary_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="candidate_pipeline.pipeline")
    asyncio.run(TracePipeline().execute(Q(), request_id="req-2"))
    lines = [r.getMessage() for r in caplog.records if "Summary:" in r.getMessage()]
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("TracePipeline Summary: request_id=req-2")
    assert "source{total=3 enabled=3" in line
    assert "fetched=[FirstSource=12,DeadSource=0,SecondSource=6]" in line
    assert "kept=6 removed=12 removed_per_filter=[EvenFilter=9,ThreeFilter=3]" in line
    assert "failed=[DeadSource:error]" in line


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_prometheus_metrics_per_stage_and_component() -> None:
    lbl = {"pipeline": "TracePipeline"}
    err = dict(lbl, stage="source", component="DeadSource", kind="error")
    kept = dict(lbl, stage="filter", component="EvenFilter", outcome="kept")
    before = (
        _sample("foryou_pipeline_component_errors_total", **err),
        _sample("foryou_pipeline_stage_seconds_count", **lbl, stage="filter"),
        _sample("foryou_pipeline_component_seconds_count", **lbl, stage="scorer", component="IdScorer"),
        _sample("foryou_pipeline_component_candidates_total", **kept),
        _sample("foryou_pipeline_request_seconds_count", **lbl),
    )
    # two instances in one process share the module-level metrics (no duplicate registration)
    asyncio.run(TracePipeline().execute(Q()))
    asyncio.run(TracePipeline().execute(Q()))
    after = (
        _sample("foryou_pipeline_component_errors_total", **err),
        _sample("foryou_pipeline_stage_seconds_count", **lbl, stage="filter"),
        _sample("foryou_pipeline_component_seconds_count", **lbl, stage="scorer", component="IdScorer"),
        _sample("foryou_pipeline_component_candidates_total", **kept),
        _sample("foryou_pipeline_request_seconds_count", **lbl),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 2, 18, 2]


def test_components_lists_names_per_stage() -> None:
    comps = TracePipeline().components()
    assert comps[Stage.SOURCE] == ["FirstSource", "DeadSource", "SecondSource"]
    assert comps[Stage.FILTER] == ["EvenFilter", "ThreeFilter"]
    assert comps[Stage.SELECTOR] == ["TopScore"] and comps[Stage.DEPENDENT_QUERY_HYDRATOR] == []


class RecordingSideEffect(SideEffect):
    def __init__(self) -> None:
        self.calls: list[tuple[str | None, list[int], list[int]]] = []

    async def run(self, query: Q, selected: Sequence[C], non_selected: Sequence[C]) -> None:
        await asyncio.sleep(0.01)
        ctx = current_context()
        self.calls.append(
            (ctx.request_id if ctx else None, [c.id for c in selected], [c.id for c in non_selected])
        )


class HangingSideEffect(SideEffect):
    timeout_s = 0.05

    async def run(self, query: Q, selected: Sequence[C], non_selected: Sequence[C]) -> None:
        await asyncio.sleep(10)


def test_side_effects_get_final_lists_and_context_and_time_out() -> None:
    rec = RecordingSideEffect()
    p = TracePipeline(side_effects=[rec, HangingSideEffect()])
    err = {
        "pipeline": "TracePipeline",
        "stage": "side_effect",
        "component": "HangingSideEffect",
        "kind": "timeout",
    }
    before = _sample("foryou_pipeline_component_errors_total", **err)

    async def go() -> None:
        res = await p.execute(Q(), request_id="req-3")
        assert rec.calls == [] and p.pending_side_effects == 2  # launched, not awaited
        res.selected.clear()  # the caller reshaping its result does not change what side effects see
        assert await p.drain_side_effects(timeout_s=2.0)

    asyncio.run(go())
    assert rec.calls == [("req-3", [103, 101, 11], [1, 7, 5])]
    assert _sample("foryou_pipeline_component_errors_total", **err) - before == 1


def test_context_is_none_outside_and_has_a_deadline_inside() -> None:
    seen: list[RequestContext] = []

    class Peek(Source):
        async def get_candidates(self, query: Q) -> list[C]:
            ctx = current_context()
            assert ctx is not None
            seen.append(ctx)
            remaining = ctx.remaining_s()
            assert remaining is not None and 0 < remaining <= 0.5
            return []

    assert current_context() is None
    p = CandidatePipeline(sources=[Peek()], result_size=1, config=PipelineConfig(request_deadline_s=0.5))
    asyncio.run(p.execute(Q(), request_id="ctx"))
    assert seen[0].request_id == "ctx" and seen[0].pipeline == "CandidatePipeline"
    assert current_context() is None


class FlakyFilter(Filter):
    def __init__(self, drop: set[int], broken: bool) -> None:
        self.drop, self.broken = drop, broken

    async def filter(self, query: Q, candidates: list[C]) -> FilterResult[C]:
        if self.broken:
            raise RuntimeError("flaky")
        return FilterResult(
            [c for c in candidates if c.id not in self.drop], [c for c in candidates if c.id in self.drop]
        )


class FlakyScorer(Scorer):
    def __init__(self, mode: int) -> None:
        self.mode = mode

    def score(self, query: Q, candidates: Sequence[C]) -> list[object]:
        if self.mode == 1:
            raise RuntimeError("model down")
        out: list[object] = [float(c.id % 7) if c.id % 5 else math.nan for c in candidates]
        return out[:-1] if self.mode == 2 and out else out

    def update(self, candidate: C, hydrated: float) -> None:
        candidate.score = hydrated


@settings(max_examples=40, deadline=None)
@given(
    n1=st.integers(0, 40),
    n2=st.integers(0, 40),
    dead=st.booleans(),
    drop=st.sets(st.integers(0, 140)),
    broken=st.booleans(),
    scorer_mode=st.integers(0, 2),
    post_drop=st.sets(st.integers(0, 140)),
    top=st.integers(0, 40),
    size=st.integers(0, 30),
    backfill=st.booleans(),
)
def test_partition_invariant_under_failures(
    n1: int,
    n2: int,
    dead: bool,
    drop: set[int],
    broken: bool,
    scorer_mode: int,
    post_drop: set[int],
    top: int,
    size: int,
    backfill: bool,
) -> None:
    class Top(TopScore):
        pass

    Top.size = top
    sources: list[Source] = [FirstSource(0, n1), SecondSource(100, n2)]
    if dead:
        sources.insert(1, DeadSource())
    p = CandidatePipeline(
        sources=sources,
        filters=[FlakyFilter(drop, broken), EvenFilter()],
        scorers=[FlakyScorer(scorer_mode)],
        selector=Top(),
        post_selection_filters=[FlakyFilter(post_drop, False)],
        result_size=size,
        config=PipelineConfig(enable_post_selection_backfill=backfill),
    )
    res = asyncio.run(p.execute(Q()))
    got = (
        [c.id for c in res.selected]
        + [r.candidate.id for r in res.filtered]
        + [c.id for c in res.non_selected]
    )
    assert sorted(got) == list(range(n1)) + list(range(100, 100 + n2))
    assert len(res.selected) <= size
    finite = [c.score for c in res.selected if c.score is not None and math.isfinite(c.score)]
    assert finite == sorted(finite, reverse=True)
