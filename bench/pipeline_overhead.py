"""Framework overhead: 2,000 candidates through 20 trivial components (2 query hydrators, 2 sources,
4 hydrators, 6 filters, 4 scorers, 1 selector, 1 side effect). The components do almost nothing,
so the time measured is the framework's. Prints median and p99 per request."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from candidate_pipeline import (
    CandidatePipeline,
    Filter,
    Hydrator,
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
    def filter(self, query: Q, candidates: list[Cand]) -> tuple[list[Cand], list[Cand]]:
        return candidates, []


class S(Scorer):
    async def score(self, query: Q, candidates: Sequence[Cand]) -> list[float]:
        return [float(c.id) for c in candidates]

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


def main(requests: int = 300) -> None:
    logging.disable(logging.INFO)
    p = CandidatePipeline(
        query_hydrators=[QH(), QH()],
        sources=[Src(0), Src(N // 2)],
        hydrators=[H(), H(), H(), H()],
        filters=[F() for _ in range(6)],
        scorers=[S() for _ in range(4)],
        selector=Top(),
        side_effects=[SE()],
        result_size=35,
    )

    async def go() -> list[float]:
        out = []
        for _ in range(requests):
            t0 = time.perf_counter()
            await p.execute(Q())
            out.append((time.perf_counter() - t0) * 1000)
        await p.drain_side_effects()
        return out

    lat = sorted(asyncio.run(go())[20:])
    # the components' own work: building 2,000 candidates, 8 update passes, one sort
    t0 = time.perf_counter()
    for _ in range(50):
        cands = [Cand(i) for i in range(N)]
        for _ in range(8):
            for c in cands:
                c.a = 1
        sorted(cands, key=lambda c: c.score, reverse=True)
    component_ms = (time.perf_counter() - t0) * 1000 / 50
    med, p99 = statistics.median(lat), lat[int(len(lat) * 0.99) - 1]
    print(f"pipeline_overhead: {N} candidates, 20 components, {len(lat)} requests")
    print(f"  total per request   median {med:.2f} ms   p99 {p99:.2f} ms")
    print(f"  components' own work (candidate creation, updates, sort) ~{component_ms:.2f} ms")
    print(f"  framework overhead  median {med - component_ms:.2f} ms (target <= 3 ms)")


if __name__ == "__main__":
    main()
