"""Execution semantics of the pipeline framework (reference candidate-pipeline, AUG)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from candidate_pipeline import (
    CandidatePipeline,
    Filter,
    FilterResult,
    Hydrator,
    PipelineConfig,
    QueryHydrator,
    Scorer,
    Selector,
    SideEffect,
    Source,
    Stage,
)


@dataclass
class Q:
    user: int = 1
    follows: list[int] = field(default_factory=list)
    lang: str = ""


@dataclass(slots=True)
class C:
    id: int
    tag: str = ""
    score: float | None = None
    extra: int = 0


class ListSource(Source):
    def __init__(self, ids: Sequence[int], delay: float = 0.0, fail: bool = False) -> None:
        self.ids, self.delay, self.fail = list(ids), delay, fail

    async def get_candidates(self, query: Q) -> list[C]:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("source down")
        return [C(i) for i in self.ids]


class SlowSourceA(ListSource):
    pass


class SlowSourceB(ListSource):
    pass


class TagHydrator(Hydrator):
    def __init__(
        self, tag: str, delay: float = 0.0, fail_ids: Sequence[int] = (), short: bool = False
    ) -> None:
        self.tag, self.delay, self.fail_ids, self.short = tag, delay, set(fail_ids), short

    async def hydrate(self, query: Q, candidates: Sequence[C]) -> list[object]:
        await asyncio.sleep(self.delay)
        out: list[object] = [
            ValueError("x") if c.id in self.fail_ids else c.tag + self.tag for c in candidates
        ]
        return out[:-1] if self.short else out

    def update(self, candidate: C, hydrated: object) -> None:
        candidate.tag = str(hydrated)


class OtherTagHydrator(TagHydrator):
    pass


class IdScorer(Scorer):
    """score = id (or a fixed mapping), plus whatever an earlier scorer left."""

    def __init__(self, values: dict[int, float] | None = None, fail: bool = False) -> None:
        self.values, self.fail = values, fail

    async def score(self, query: Q, candidates: Sequence[C]) -> list[float]:
        if self.fail:
            raise RuntimeError("model down")
        return [self.values.get(c.id, float(c.id)) if self.values else float(c.id) for c in candidates]

    def update(self, candidate: C, hydrated: float) -> None:
        candidate.score = hydrated


class DoubleScorer(Scorer):
    async def score(self, query: Q, candidates: Sequence[C]) -> list[float]:
        return [(c.score or 0.0) * 2 for c in candidates]

    def update(self, candidate: C, hydrated: float) -> None:
        candidate.score = hydrated


class OddFilter(Filter):
    def filter(self, query: Q, candidates: list[C]) -> FilterResult[C]:
        return FilterResult([c for c in candidates if c.id % 2 == 0], [c for c in candidates if c.id % 2])


class BrokenFilter(Filter):
    def filter(self, query: Q, candidates: list[C]) -> FilterResult[C]:
        raise RuntimeError("bug")


class DropIdsFilter(Filter):
    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = set(ids)

    async def filter(self, query: Q, candidates: list[C]) -> FilterResult[C]:
        return FilterResult(
            [c for c in candidates if c.id not in self.ids], [c for c in candidates if c.id in self.ids]
        )


class TopK(Selector):
    def __init__(self, size: int | None) -> None:
        self.size = size

    def score(self, candidate: C) -> float:
        return candidate.score if candidate.score is not None else -math.inf


class LangQueryHydrator(QueryHydrator):
    def __init__(self, value: str = "en", fail: bool = False, delay: float = 0.0) -> None:
        self.value, self.fail, self.delay = value, fail, delay

    async def hydrate(self, query: Q) -> str:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("redis down")
        return self.value

    def update(self, query: Q, hydrated: str) -> None:
        query.lang = hydrated


class FollowsQueryHydrator(QueryHydrator):
    async def hydrate(self, query: Q) -> list[int]:
        return [7, 8]

    def update(self, query: Q, hydrated: list[int]) -> None:
        query.follows = hydrated


class Disabled(Source):
    def enable(self, query: Q) -> bool:
        return False

    async def get_candidates(self, query: Q) -> list[C]:
        raise AssertionError("disabled component ran")


def run(p: CandidatePipeline, q: Q | None = None):  # type: ignore[no-untyped-def]
    return asyncio.run(p.execute(q or Q()))


def ids(cs: Sequence[C]) -> list[int]:
    return [c.id for c in cs]


def test_sources_run_in_parallel_and_concatenate_in_declaration_order() -> None:
    p = CandidatePipeline(
        sources=[SlowSourceA([3, 4], delay=0.1), SlowSourceB([1, 2], delay=0.1)], result_size=10
    )
    t0 = time.perf_counter()
    res = run(p)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.19  # sequential would take >= 0.2
    assert ids(res.selected) == [3, 4, 1, 2]


def test_query_hydrators_parallel_and_merged_in_order_fail_open() -> None:
    p = CandidatePipeline(
        query_hydrators=[
            LangQueryHydrator("de", delay=0.1),
            FollowsQueryHydrator(),
            LangQueryHydrator(fail=True),
        ],
        result_size=1,
    )
    t0 = time.perf_counter()
    res = run(p)
    assert time.perf_counter() - t0 < 0.5
    assert res.query.lang == "de" and res.query.follows == [7, 8]
    assert res.failed_components == ["LangQueryHydrator"]


def test_dependent_query_hydrators_see_hydrated_query() -> None:
    class NeedsFollows(QueryHydrator):
        async def hydrate(self, query: Q) -> str:
            return f"n{len(query.follows)}"

        def update(self, query: Q, hydrated: str) -> None:
            query.lang = hydrated

    p = CandidatePipeline(
        query_hydrators=[FollowsQueryHydrator()], dependent_query_hydrators=[NeedsFollows()], result_size=1
    )
    assert run(p).query.lang == "n2"


def test_failing_source_contributes_nothing() -> None:
    p = CandidatePipeline(sources=[ListSource([1], fail=True), ListSource([2, 3])], result_size=10)
    res = run(p)
    assert ids(res.selected) == [2, 3]
    assert res.failed_components == ["ListSource"]


def test_hydrators_see_same_input_merge_in_order_and_per_candidate_errors() -> None:
    p = CandidatePipeline(
        sources=[ListSource([1, 2, 3])],
        hydrators=[TagHydrator("a", fail_ids=[2]), OtherTagHydrator("b")],
        result_size=10,
    )
    res = run(p)
    # both saw the untouched tag "", the later one wins where both wrote
    assert [c.tag for c in res.selected] == ["b", "b", "b"]
    p2 = CandidatePipeline(
        sources=[ListSource([1, 2, 3])], hydrators=[TagHydrator("a", fail_ids=[2])], result_size=10
    )
    assert [c.tag for c in run(p2).selected] == ["a", "", "a"]


def test_length_mismatch_invalidates_whole_hydrator_output() -> None:
    p = CandidatePipeline(
        sources=[ListSource([1, 2, 3])], hydrators=[TagHydrator("a", short=True)], result_size=10
    )
    res = run(p)
    assert [c.tag for c in res.selected] == ["", "", ""]
    assert "length_mismatch expected=3 got=2" in res.stage(Stage.HYDRATOR).components[0].error


def test_hydrator_timeout_fails_open() -> None:
    slow = TagHydrator("slow", delay=0.5)
    slow.timeout_s = 0.05
    p = CandidatePipeline(sources=[ListSource([1])], hydrators=[slow, OtherTagHydrator("ok")], result_size=10)
    t0 = time.perf_counter()
    res = run(p)
    assert time.perf_counter() - t0 < 0.4
    assert res.selected[0].tag == "ok"
    assert res.stage(Stage.HYDRATOR).components[0].error == "timeout"


def test_request_deadline_bounds_the_whole_request() -> None:
    cfg = PipelineConfig(component_timeout_s=10, request_deadline_s=0.1)
    p = CandidatePipeline(sources=[ListSource([1], delay=1.0), ListSource([2])], result_size=10, config=cfg)
    t0 = time.perf_counter()
    res = run(p)
    assert time.perf_counter() - t0 < 0.5
    assert ids(res.selected) == [2]


def test_filters_sequential_record_filter_name_and_failing_filter_is_skipped() -> None:
    p = CandidatePipeline(
        sources=[ListSource(range(6))],
        filters=[BrokenFilter(), OddFilter(), DropIdsFilter([4])],
        result_size=10,
    )
    res = run(p)
    assert ids(res.selected) == [0, 2]
    assert sorted((r.candidate.id, r.filter) for r in res.filtered) == [
        (1, "OddFilter"),
        (3, "OddFilter"),
        (4, "DropIdsFilter"),
        (5, "OddFilter"),
    ]
    assert res.filtered_by() == {"OddFilter": 3, "DropIdsFilter": 1}
    assert "BrokenFilter" in res.failed_components


def test_scorers_sequential_and_failing_scorer_leaves_scores() -> None:
    p = CandidatePipeline(
        sources=[ListSource([1, 2])],
        scorers=[IdScorer(), IdScorer(fail=True), DoubleScorer()],
        selector=TopK(None),
        result_size=10,
    )
    res = run(p)
    assert [(c.id, c.score) for c in res.selected] == [(2, 4.0), (1, 2.0)]


def test_selector_sinks_nan_and_inf_below_finite() -> None:
    vals = {1: float("nan"), 2: 0.5, 3: float("inf"), 4: -1.0, 5: float("-inf"), 6: 2.0}
    p = CandidatePipeline(
        sources=[ListSource(vals)], scorers=[IdScorer(vals)], selector=TopK(3), result_size=10
    )
    res = run(p)
    assert ids(res.selected) == [6, 2, 4]
    assert set(ids(res.non_selected)) == {1, 3, 5}


def test_disabled_components_skipped() -> None:
    p = CandidatePipeline(sources=[Disabled(), ListSource([1])], result_size=10)
    res = run(p)
    assert ids(res.selected) == [1]
    assert res.stage(Stage.SOURCE).enabled == 1 and res.stage(Stage.SOURCE).total == 2


def test_backfill_reference_case_50_selected_20_reserve_20_dropped() -> None:
    # scores descending by id order: candidate i has score 100 - i, so selection = ids 0..49, reserve 50..69
    vals = {i: 100.0 - i for i in range(70)}
    p = CandidatePipeline(
        sources=[ListSource(range(70))],
        scorers=[IdScorer(vals)],
        selector=TopK(50),
        post_selection_filters=[DropIdsFilter(range(20))],
        result_size=35,
        config=PipelineConfig(enable_post_selection_backfill=True),
    )
    res = run(p)
    assert ids(res.selected) == list(range(20, 55))
    assert len(res.filtered) == 20
    assert ids(res.non_selected) == list(range(55, 70))


def test_without_backfill_overflow_goes_to_non_selected() -> None:
    vals = {i: 100.0 - i for i in range(70)}
    p = CandidatePipeline(
        sources=[ListSource(range(70))],
        scorers=[IdScorer(vals)],
        selector=TopK(50),
        post_selection_filters=[DropIdsFilter(range(20))],
        result_size=25,
    )
    res = run(p)
    assert ids(res.selected) == list(range(20, 45))
    assert ids(res.non_selected) == list(range(50, 70)) + list(range(45, 50))


class Recorder(SideEffect):
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail, self.seen = delay, fail, []  # type: ignore[var-annotated]

    async def run(self, query: Q, selected: Sequence[C], non_selected: Sequence[C]) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("kafka down")
        self.seen.append(ids(selected))


def test_side_effects_do_not_delay_response_and_errors_are_ignored() -> None:
    slow, broken = Recorder(delay=0.3), Recorder(fail=True)
    p = CandidatePipeline(sources=[ListSource([1, 2])], side_effects=[slow, broken], result_size=10)

    async def go() -> float:
        t0 = time.perf_counter()
        res = await p.execute(Q())
        took = time.perf_counter() - t0
        assert ids(res.selected) == [1, 2]
        assert slow.seen == []
        await p.drain_side_effects()
        return took

    assert asyncio.run(go()) < 0.25
    assert slow.seen == [[1, 2]]


def test_components_lists_every_stage() -> None:
    p = CandidatePipeline(
        query_hydrators=[FollowsQueryHydrator()],
        sources=[ListSource([])],
        filters=[OddFilter()],
        selector=TopK(1),
        side_effects=[Recorder()],
        result_size=1,
    )
    comps = p.components()
    assert comps[Stage.QUERY_HYDRATOR] == ["FollowsQueryHydrator"]
    assert comps[Stage.FILTER] == ["OddFilter"] and comps[Stage.SELECTOR] == ["TopK"]
    assert comps[Stage.SIDE_EFFECT] == ["Recorder"] and comps[Stage.SCORER] == []


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 80),
    drop=st.sets(st.integers(0, 80)),
    post_drop=st.sets(st.integers(0, 80)),
    top=st.integers(0, 60),
    size=st.integers(0, 50),
    backfill=st.booleans(),
)
def test_every_candidate_ends_in_exactly_one_bucket(
    n: int, drop: set[int], post_drop: set[int], top: int, size: int, backfill: bool
) -> None:
    p = CandidatePipeline(
        sources=[ListSource(range(n))],
        filters=[DropIdsFilter(drop)],
        scorers=[IdScorer()],
        selector=TopK(top),
        post_selection_filters=[DropIdsFilter(post_drop)],
        result_size=size,
        config=PipelineConfig(enable_post_selection_backfill=backfill),
    )
    res = run(p)
    all_ids = ids(res.selected) + [r.candidate.id for r in res.filtered] + ids(res.non_selected)
    assert sorted(all_ids) == list(range(n))
    assert len(res.selected) <= size


# ---- parallelism ----------------------------------------------------------------------------


def test_candidate_hydrators_run_in_parallel() -> None:
    p = CandidatePipeline(
        sources=[ListSource([1, 2])],
        hydrators=[TagHydrator("a", delay=0.1), OtherTagHydrator("b", delay=0.1)],
        result_size=10,
    )
    t0 = time.perf_counter()
    res = run(p)
    assert time.perf_counter() - t0 < 0.19  # sequential would take >= 0.2
    assert [c.tag for c in res.selected] == ["b", "b"]


def test_query_hydrators_run_in_parallel() -> None:
    class SlowFollows(FollowsQueryHydrator):
        async def hydrate(self, query: Q) -> list[int]:
            await asyncio.sleep(0.1)
            return [9]

    p = CandidatePipeline(query_hydrators=[SlowFollows(), LangQueryHydrator("fr", delay=0.1)], result_size=1)
    t0 = time.perf_counter()
    res = run(p)
    assert time.perf_counter() - t0 < 0.19
    assert res.query.follows == [9] and res.query.lang == "fr"


def test_query_hydrators_all_see_the_original_query() -> None:
    seen: list[list[int]] = []

    class ReadsFollows(QueryHydrator):
        async def hydrate(self, query: Q) -> str:
            await asyncio.sleep(0.01)  # FollowsQueryHydrator has finished by now
            seen.append(list(query.follows))
            return "x"

        def update(self, query: Q, hydrated: str) -> None:
            query.lang = hydrated

    run(CandidatePipeline(query_hydrators=[FollowsQueryHydrator(), ReadsFollows()], result_size=1))
    assert seen == [[]]  # updates are merged only after every hydrator of the stage finished


# ---- fail-open per stage type ---------------------------------------------------------------


class Boom(Exception):
    pass


def test_failing_hydrator_leaves_candidates_unchanged() -> None:
    class BrokenHydrator(Hydrator):
        async def hydrate(self, query: Q, candidates: Sequence[C]) -> list[object]:
            raise Boom("down")

    p = CandidatePipeline(
        sources=[ListSource([1, 2])], hydrators=[BrokenHydrator(), TagHydrator("a")], result_size=10
    )
    res = run(p)
    assert [c.tag for c in res.selected] == ["a", "a"]
    assert res.failed_components == ["BrokenHydrator"]
    assert res.failures[0].error_kind == "error" and "Boom" in res.failures[0].error


def test_update_raising_fails_open_for_that_component() -> None:
    class BadUpdate(TagHydrator):
        def update(self, candidate: C, hydrated: object) -> None:
            raise Boom("bug")

    res = run(CandidatePipeline(sources=[ListSource([1])], hydrators=[BadUpdate("a")], result_size=10))
    assert [c.id for c in res.selected] == [1]
    assert res.failed_components == ["BadUpdate"]


def test_scorer_length_mismatch_and_per_candidate_errors() -> None:
    class ShortScorer(Scorer):
        async def score(self, query: Q, candidates: Sequence[C]) -> list[float]:
            return [1.0] * (len(candidates) + 1)

        def update(self, candidate: C, hydrated: float) -> None:
            candidate.score = hydrated

    class PartialScorer(Scorer):
        def score(self, query: Q, candidates: Sequence[C]) -> list[object]:  # sync hook is fine
            return [Boom() if c.id == 2 else 10.0 for c in candidates]

        def update(self, candidate: C, hydrated: float) -> None:
            candidate.score = hydrated

    p = CandidatePipeline(
        sources=[ListSource([1, 2, 3])],
        scorers=[IdScorer(), ShortScorer(), PartialScorer()],
        result_size=10,
    )
    res = run(p)
    assert {c.id: c.score for c in res.selected} == {1: 10.0, 2: 2.0, 3: 10.0}
    short, partial = res.stage(Stage.SCORER).components[1:]
    assert short.error_kind == "length_mismatch" and "expected=3 got=4" in short.error
    assert partial.error == "" and partial.failed == 1 and partial.output_count == 2


def test_filter_with_inconsistent_output_is_discarded() -> None:
    class LosesCandidates(Filter):
        def filter(self, query: Q, candidates: list[C]) -> FilterResult[C]:
            return FilterResult(candidates[:1], [])

    res = run(CandidatePipeline(sources=[ListSource([1, 2, 3])], filters=[LosesCandidates()], result_size=10))
    assert ids(res.selected) == [1, 2, 3] and res.filtered == []
    assert res.failed_components == ["LosesCandidates"]


def test_filter_output_is_checked_not_trusted() -> None:
    class PlainPair(Filter):  # a bare (kept, removed) tuple still works
        def filter(self, query: Q, candidates: list[C]) -> tuple[list[C], list[C]]:  # type: ignore[override]
            return candidates[1:], candidates[:1]

    class NotAPair(Filter):
        def filter(self, query: Q, candidates: list[C]) -> list[C]:  # type: ignore[override]
            return candidates

    p = CandidatePipeline(sources=[ListSource([1, 2, 3])], filters=[NotAPair(), PlainPair()], result_size=10)
    res = run(p)
    assert ids(res.selected) == [2, 3]
    assert [(r.candidate.id, r.filter) for r in res.filtered] == [(1, "PlainPair")]
    assert res.failed_components == ["NotAPair"]
    assert "bad output" in res.stage(Stage.FILTER).components[0].error


def test_failing_selector_selects_everything_in_input_order() -> None:
    class BrokenSelector(Selector):
        size = 1

        def score(self, candidate: C) -> float:
            raise Boom()

    res = run(CandidatePipeline(sources=[ListSource([3, 1, 2])], selector=BrokenSelector(), result_size=2))
    assert ids(res.selected) == [3, 1] and ids(res.non_selected) == [2]
    assert res.failed_components == ["BrokenSelector"]


def test_failing_post_selection_hydrator_and_filter_fail_open() -> None:
    p = CandidatePipeline(
        sources=[ListSource([1, 2])],
        post_selection_hydrators=[TagHydrator("a", fail_ids=[1]), OtherTagHydrator("b", short=True)],
        post_selection_filters=[BrokenFilter(), OddFilter()],
        result_size=10,
    )
    res = run(p)
    assert [(c.id, c.tag) for c in res.selected] == [(2, "a")]
    assert [(r.candidate.id, r.filter) for r in res.filtered] == [(1, "OddFilter")]
    assert res.failed_components == ["OtherTagHydrator", "BrokenFilter"]


def test_broken_enable_disables_the_component() -> None:
    class BadEnable(ListSource):
        def enable(self, query: Q) -> bool:
            raise Boom()

    res = run(CandidatePipeline(sources=[BadEnable([1]), ListSource([2])], result_size=10))
    assert ids(res.selected) == [2] and res.stage(Stage.SOURCE).enabled == 1


# ---- timeouts and deadline ------------------------------------------------------------------


class SlowQueryHydrator(LangQueryHydrator):
    timeout_s = 0.05


class SlowSource(ListSource):
    timeout_s = 0.05


class SlowScorer(IdScorer):
    timeout_s = 0.05

    async def score(self, query: Q, candidates: Sequence[C]) -> list[float]:
        await asyncio.sleep(1.0)
        return [99.0] * len(candidates)


class SlowFilter(Filter):
    timeout_s = 0.05

    async def filter(self, query: Q, candidates: list[C]) -> FilterResult[C]:
        await asyncio.sleep(1.0)
        return FilterResult([], candidates)


def test_each_stage_type_times_out_and_fails_open() -> None:
    p = CandidatePipeline(
        query_hydrators=[SlowQueryHydrator("xx", delay=1.0), FollowsQueryHydrator()],
        sources=[SlowSource([1], delay=1.0), ListSource([2, 3])],
        filters=[SlowFilter()],
        scorers=[IdScorer(), SlowScorer()],
        selector=TopK(None),
        result_size=10,
        config=PipelineConfig(component_timeout_s=10, request_deadline_s=None),
    )
    t0 = time.perf_counter()
    res = run(p)
    assert time.perf_counter() - t0 < 0.8  # four sequential 1 s sleeps were cut short
    assert res.query.lang == "" and res.query.follows == [7, 8]
    assert [(c.id, c.score) for c in res.selected] == [(3, 3.0), (2, 2.0)]
    assert res.filtered == []
    assert [(f.component, f.error_kind) for f in res.failures] == [
        ("SlowQueryHydrator", "timeout"),
        ("SlowSource", "timeout"),
        ("SlowFilter", "timeout"),
        ("SlowScorer", "timeout"),
    ]


def test_config_timeout_per_component_name_wins() -> None:
    cfg = PipelineConfig(component_timeout_s=10, component_timeouts={"SlowSourceA": 0.05})
    p = CandidatePipeline(
        sources=[SlowSourceA([1], delay=1.0), SlowSourceB([2], delay=0.1)], result_size=10, config=cfg
    )
    res = run(p)
    assert ids(res.selected) == [2] and res.failed_components == ["SlowSourceA"]


def test_components_after_the_deadline_are_not_started() -> None:
    started: list[str] = []

    class Late(TagHydrator):
        async def hydrate(self, query: Q, candidates: Sequence[C]) -> list[object]:
            started.append("late")
            return ["x"] * len(candidates)

    class SyncSource(Source):
        def get_candidates(self, query: Q) -> list[C]:  # not awaitable: nothing to cut short
            return [C(1), C(2)]

    cfg = PipelineConfig(component_timeout_s=None, request_deadline_s=0.05)
    p = CandidatePipeline(
        query_hydrators=[LangQueryHydrator("de", delay=0.2)],
        sources=[SyncSource()],
        hydrators=[Late("a")],
        filters=[OddFilter()],  # sync filters still run: they are cheap and guard what is served
        result_size=10,
        config=cfg,
    )
    t0 = time.perf_counter()
    res = run(p)
    assert time.perf_counter() - t0 < 0.15
    assert started == []  # an async hook is never started once the deadline has passed
    assert ids(res.selected) == [2] and [r.candidate.id for r in res.filtered] == [1]
    assert [(f.component, f.error_kind) for f in res.failures] == [
        ("LangQueryHydrator", "timeout"),
        ("Late", "timeout"),
    ]


def test_backfill_hydrates_only_the_batch_and_refilters_the_whole_slate() -> None:
    calls: list[list[int]] = []

    class RecordingHydrator(TagHydrator):
        async def hydrate(self, query: Q, candidates: Sequence[C]) -> list[object]:
            calls.append(ids(candidates))
            return ["h"] * len(candidates)

    class OnePerGroupFilter(Filter):  # slate-wide, like conversation dedup: first of id % 3 wins
        def filter(self, query: Q, candidates: list[C]) -> FilterResult[C]:
            seen: set[int] = set()
            kept: list[C] = []
            removed: list[C] = []
            for c in candidates:
                (removed if c.id % 3 in seen else kept).append(c)
                seen.add(c.id % 3)
            return FilterResult(kept, removed)

    vals = {i: 100.0 - i for i in range(10)}
    p = CandidatePipeline(
        sources=[ListSource(range(10))],
        scorers=[IdScorer(vals)],
        selector=TopK(4),
        post_selection_hydrators=[RecordingHydrator("")],
        post_selection_filters=[OnePerGroupFilter()],
        result_size=4,
        config=PipelineConfig(enable_post_selection_backfill=True),
    )
    res = run(p)
    # every backfilled post shares a group with the slate, so none survives the whole-slate re-filter
    assert ids(res.selected) == [0, 1, 2]
    assert sorted(r.candidate.id for r in res.filtered) == list(range(3, 10))
    assert res.non_selected == []
    assert calls == [[0, 1, 2, 3], [4], [5], [6], [7], [8], [9]]
    assert all(c.tag == "h" for c in res.selected)


def test_vectorised_scorer_with_update_all_fast_path() -> None:
    import numpy as np

    class VecScorer(Scorer):
        def score(self, query: Q, candidates: Sequence[C]) -> np.ndarray:
            return np.array([c.id for c in candidates], dtype=np.float64) / 10

        def update_all(self, candidates: Sequence[C], results: np.ndarray) -> None:
            for c, s in zip(candidates, results.tolist(), strict=True):
                c.score = s

    res = run(
        CandidatePipeline(
            sources=[ListSource([1, 5, 3])], scorers=[VecScorer()], selector=TopK(2), result_size=5
        )
    )
    assert [(c.id, c.score) for c in res.selected] == [(5, 0.5), (3, 0.3)]
    tr = res.stage(Stage.SCORER).components[0]
    assert tr.error == "" and tr.output_count == 3


def test_enable_is_per_query_for_every_stage_type() -> None:
    class OffForUser2:
        def enable(self, query: Q) -> bool:
            return query.user != 2

    class QH(OffForUser2, LangQueryHydrator):
        pass

    class H(OffForUser2, TagHydrator):
        pass

    class F(OffForUser2, OddFilter):
        pass

    class S(OffForUser2, IdScorer):
        pass

    class Sel(OffForUser2, TopK):
        pass

    class SE(OffForUser2, Recorder):
        pass

    se = SE()
    p = CandidatePipeline(
        query_hydrators=[QH("de")],
        sources=[ListSource([1, 2, 3, 4])],
        hydrators=[H("h")],
        filters=[F()],
        scorers=[S()],
        selector=Sel(1),
        post_selection_filters=[F()],
        side_effects=[se],
        result_size=10,
    )

    async def go(user: int) -> tuple[str, list[tuple[int, str, float | None]], list[int]]:
        res = await p.execute(Q(user=user))
        await p.drain_side_effects()
        return res.query.lang, [(c.id, c.tag, c.score) for c in res.selected], ids(res.non_selected)

    assert asyncio.run(go(1)) == ("de", [(4, "h", 4.0)], [2])
    assert se.seen == [[4]]
    # disabled: nothing hydrated, filtered or scored; without a selector everything is selected
    assert asyncio.run(go(2)) == ("", [(1, "", None), (2, "", None), (3, "", None), (4, "", None)], [])
    assert se.seen == [[4]]


def test_per_call_deadline_overrides_config() -> None:
    cfg = PipelineConfig(component_timeout_s=None, request_deadline_s=None)
    p = CandidatePipeline(sources=[ListSource([1], delay=1.0), ListSource([2])], result_size=10, config=cfg)

    async def go() -> list[int]:
        return ids((await p.execute(Q(), deadline_s=0.05)).selected)

    t0 = time.perf_counter()
    assert asyncio.run(go()) == [2]
    assert time.perf_counter() - t0 < 0.5


def test_source_returning_any_iterable_or_garbage() -> None:
    class TupleSource(Source):
        def get_candidates(self, query: Q) -> tuple[C, ...]:  # a sync hook is fine too
            return (C(1), C(2))

    class GarbageSource(Source):
        async def get_candidates(self, query: Q) -> int:
            return 42  # not iterable: a broken output fails open

    class NoneSource(Source):
        async def get_candidates(self, query: Q) -> None:
            return None

    p = CandidatePipeline(
        sources=[TupleSource(), GarbageSource(), NoneSource(), ListSource([3])], result_size=10
    )
    res = run(p)
    assert ids(res.selected) == [1, 2, 3]
    assert res.failed_components == ["GarbageSource"]
    fetched = {c.component: c.fetched for c in res.stage(Stage.SOURCE).components}
    assert fetched == {"TupleSource": 2, "GarbageSource": 0, "NoneSource": 0, "ListSource": 1}


def test_side_effect_tasks_are_held_and_errors_counted_not_raised() -> None:
    from prometheus_client import REGISTRY

    class SyncSideEffect(SideEffect):
        def __init__(self) -> None:
            self.seen: list[list[int]] = []

        def run(self, query: Q, selected: Sequence[C], non_selected: Sequence[C]) -> None:
            self.seen.append(ids(selected))

    class ExplodingSideEffect(SideEffect):
        async def run(self, query: Q, selected: Sequence[C], non_selected: Sequence[C]) -> None:
            raise RuntimeError("kafka down")

    class SideEffectPipeline(CandidatePipeline):
        pass

    labels = {
        "pipeline": "SideEffectPipeline",
        "stage": "side_effect",
        "component": "ExplodingSideEffect",
        "kind": "error",
    }
    before = REGISTRY.get_sample_value("foryou_pipeline_component_errors_total", labels) or 0.0
    sync_se, gate = SyncSideEffect(), Recorder(delay=0.05)
    p = SideEffectPipeline(
        sources=[ListSource([4])], side_effects=[sync_se, ExplodingSideEffect(), gate], result_size=1
    )

    async def go() -> tuple[int, bool]:
        await p.execute(Q())
        pending = p.pending_side_effects  # launched, referenced, not awaited by execute
        return pending, await p.drain_side_effects()

    assert asyncio.run(go()) == (3, True)
    assert p.pending_side_effects == 0
    assert sync_se.seen == [[4]] and gate.seen == [[4]]
    after = REGISTRY.get_sample_value("foryou_pipeline_component_errors_total", labels)
    assert after == before + 1
