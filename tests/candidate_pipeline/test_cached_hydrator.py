"""CachedHydrator (reference AUG algorithm) and its default TtlCache (cachetools underneath)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import pytest

from candidate_pipeline import CachedHydrator, CandidatePipeline, MissingHydration, Source, Stage, TtlCache


@dataclass(slots=True)
class C:
    id: int
    text: str = ""


class Q:
    pass


class TextHydrator(CachedHydrator[Q, C]):
    def __init__(
        self, cache: TtlCache | None = None, short: bool = False, missing: int | None = None
    ) -> None:
        super().__init__(cache)
        self.calls: list[list[int]] = []
        self.short, self.missing = short, missing

    def cache_key(self, candidate: C) -> Hashable:
        return candidate.id

    def already_hydrated(self, candidate: C) -> bool:
        return candidate.text.startswith("pre:")

    def from_candidate(self, candidate: C) -> str:
        return candidate.text

    async def hydrate_from_client(self, query: Q, candidates: Sequence[C]) -> list[object]:
        self.calls.append([c.id for c in candidates])
        out: list[object] = [KeyError(c.id) if c.id == self.missing else f"t{c.id}" for c in candidates]
        return out[:-1] if self.short else out

    def update(self, candidate: C, hydrated: str) -> None:
        candidate.text = hydrated


def hydrate(h: TextHydrator, cands: list[C]) -> list[object]:
    return asyncio.run(h.hydrate(Q(), cands))


def test_hits_served_from_cache_misses_batched_once_and_written_back() -> None:
    h = TextHydrator(missing=3)
    assert hydrate(h, [C(1), C(2), C(3)])[:2] == ["t1", "t2"]
    assert h.calls == [[1, 2, 3]]
    out = hydrate(h, [C(2), C(4), C(3), C(1), C(5, "pre:x")])
    assert h.calls[1] == [4, 3]  # only misses; the failed id 3 was not cached
    assert out[:2] == ["t2", "t4"] and isinstance(out[2], KeyError) and out[3:] == ["t1", "pre:x"]


def test_client_length_mismatch_fails_every_candidate_and_caches_nothing() -> None:
    cache: TtlCache = TtlCache()
    h = TextHydrator(cache, short=True)
    out = hydrate(h, [C(1), C(2)])
    assert all(isinstance(x, MissingHydration) for x in out) and len(out) == 2
    assert len(cache) == 0


def test_in_a_pipeline_failed_candidates_keep_their_fields() -> None:
    class Src(Source):
        async def get_candidates(self, query: Q) -> list[C]:
            return [C(1, "old"), C(2, "old")]

    h = TextHydrator(missing=2)
    res = asyncio.run(CandidatePipeline(sources=[Src()], hydrators=[h], result_size=5).execute(Q()))
    assert [c.text for c in res.selected] == ["t1", "old"]
    assert res.stage(Stage.HYDRATOR).components[0].failed == 1


def test_ttl_cache_expires_and_evicts_least_recently_used() -> None:
    now = [0.0]
    cache: TtlCache[int, str] = TtlCache(max_entries=2, ttl_s=10, clock=lambda: now[0])
    cache.insert(1, "a")
    cache.insert(2, "b")
    assert cache.get(1) == "a"  # 1 is now the most recently used
    cache.insert(3, "c")
    assert cache.get(2) is None and cache.get(1) == "a" and cache.get(3) == "c"
    now[0] = 10.0
    assert cache.get(1) is None and cache.get(3) is None  # expired exactly ttl_s after insertion
    assert len(cache) == 0  # counts live entries only
    now[0] = 20.0
    cache.insert(4, "d")
    now[0] = 25.0
    assert cache.get(4) == "d" and len(cache) == 1
    with pytest.raises(ValueError):
        TtlCache(max_entries=0)
