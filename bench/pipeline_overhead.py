"""Framework overhead: 2,000 candidates through 20 trivial components (2 query hydrators, 2 sources,
4 hydrators, 6 filters, 4 scorers, 1 selector, 1 side effect).

The same component objects are also called directly, in the same order, with no framework
(`direct`); framework overhead = pipeline time − direct time, measured interleaved on the same
process so machine noise hits both. The pipeline runs with its INFO summary line enabled (written
to /dev/null) and its Prometheus metrics on, as in production.

    .venv/bin/python bench/pipeline_overhead.py [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

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
)

N = 2000


@dataclass(slots=True)
class Cand:
    id: int
    a: int = 0
    score: float = 0.0


class Q:
    x = 0


class QH(QueryHydrator):
    async def hydrate(self, query: Q) -> int:
        return 1

    def update(self, query: Q, hydrated: int) -> None:
        query.x = hydrated


class Src(Source):
    def __init__(self, start: int) -> None:
        self.start = start

    async def get_candidates(self, query: Q) -> list[Cand]:
        return [Cand(i) for i in range(self.start, self.start + N // 2)]


class H(Hydrator):
    async def hydrate(self, query: Q, candidates: Sequence[Cand]) -> list[int]:
        return [1] * len(candidates)

    def update_all(self, candidates: Sequence[Cand], results: Sequence[int]) -> None:
        for c, r in zip(candidates, results, strict=True):
            c.a = r


class F(Filter):
    """Removes ids divisible by `mod` (a few percent each)."""

    def __init__(self, mod: int) -> None:
        self.mod = mod

    def filter(self, query: Q, candidates: list[Cand]) -> FilterResult[Cand]:
        kept: list[Cand] = []
        removed: list[Cand] = []
        for c in candidates:
            (removed if c.id % self.mod == 0 else kept).append(c)
        return FilterResult(kept, removed)


class S(Scorer):
    async def score(self, query: Q, candidates: Sequence[Cand]) -> list[float]:
        return [float(c.id % 997) for c in candidates]

    def update_all(self, candidates: Sequence[Cand], results: Sequence[float]) -> None:
        for c, r in zip(candidates, results, strict=True):
            c.score = r


class Top(Selector):
    size = 50

    def score(self, candidate: Cand) -> float:
        return candidate.score


class SE(SideEffect):
    async def run(self, query: Q, selected: Sequence[Cand], non_selected: Sequence[Cand]) -> None:
        return None


def build() -> CandidatePipeline:
    return CandidatePipeline(
        query_hydrators=[QH(), QH()],
        sources=[Src(0), Src(N // 2)],
        hydrators=[H(), H(), H(), H()],
        filters=[F(m) for m in (17, 19, 23, 29, 31, 37)],
        scorers=[S() for _ in range(4)],
        selector=Top(),
        side_effects=[SE()],
        result_size=35,
        config=PipelineConfig(),
    )


async def direct(p: CandidatePipeline) -> None:
    """The components' own work, called in pipeline order with no framework around them."""
    q = Q()
    for qh in p.query_hydrators:
        qh.update(q, await qh.hydrate(q))
    cands: list[Cand] = []
    for s in p.sources:
        cands.extend(await s.get_candidates(q))
    for h in p.hydrators:
        h.update_all(cands, await h.hydrate(q, cands))
    for f in p.filters:
        cands, _ = f.filter(q, cands)
    for s in p.scorers:
        s.update_all(cands, await s.score(q, cands))
    assert p.selector is not None
    selected, _ = p.selector.select(q, cands)
    for se in p.side_effects:
        await se.run(q, selected[:35], selected[35:])


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main(requests: int) -> None:
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    p = build()

    tp: list[float] = []  # wall ms, pipeline
    td: list[float] = []  # wall ms, direct
    cp: list[float] = []  # CPU ms of this thread (robust to other processes on the 2 shared cores)
    cd: list[float] = []

    async def go() -> None:
        for i in range(requests + 20):
            c0, t0 = time.thread_time(), time.perf_counter()
            res = await p.execute(Q())
            c1, t1 = time.thread_time(), time.perf_counter()
            await direct(p)
            c2, t2 = time.thread_time(), time.perf_counter()
            assert len(res.selected) == 35
            if i >= 20:  # warm-up
                tp.append((t1 - t0) * 1000)
                td.append((t2 - t1) * 1000)
                cp.append((c1 - c0) * 1000)
                cd.append((c2 - c1) * 1000)
            await asyncio.sleep(0)  # let the side effect task run
        await p.drain_side_effects()

    asyncio.run(go())
    diff = [a - b for a, b in zip(tp, td, strict=True)]
    cdiff = [a - b for a, b in zip(cp, cd, strict=True)]
    print(f"pipeline_overhead: {N} candidates, 20 components, {requests} requests (after 20 warm-up)")
    print(f"  pipeline total      median {statistics.median(tp):.2f} ms   p99 {pct(tp, 0.99):.2f} ms")
    print(f"  direct calls        median {statistics.median(td):.2f} ms   p99 {pct(td, 0.99):.2f} ms")
    print(
        f"  framework overhead  median {statistics.median(diff):.2f} ms   p99 {pct(diff, 0.99):.2f} ms"
        "   (target: median <= 3 ms)"
    )
    print(
        f"  CPU time: pipeline median {statistics.median(cp):.2f} ms, direct {statistics.median(cd):.2f} ms, "
        f"overhead median {statistics.median(cdiff):.2f} ms   p99 {pct(cdiff, 0.99):.2f} ms"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    main(ap.parse_args().requests)
