"""A Hydrator backed by a per-key cache (reference AUG `CachedHydrator`): cache hits are served
locally, every miss goes to the client in one batched call, and successful results are written
back. Subclasses implement `cache_key` and `hydrate_from_client` (and `update`)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Generic, TypeVar

from candidate_pipeline import metrics as m
from candidate_pipeline.components import Hydrator
from candidate_pipeline.context import current_context
from candidate_pipeline.ttl_cache import CacheStore, TtlCache

Q = TypeVar("Q")
C = TypeVar("C")

_EMPTY = object()


class MissingHydration(Exception):
    pass


class CachedHydrator(Hydrator[Q, C], Generic[Q, C]):
    """`cache` defaults to an in-process TtlCache; pass any store with get/insert (e.g. Redis-backed).
    To cache a "not found", return a non-None placeholder from the client and ignore it in update."""

    def __init__(self, cache: CacheStore[Any, Any] | None = None) -> None:
        self.cache: CacheStore[Any, Any] = cache if cache is not None else TtlCache()

    # -- hooks

    def cache_key(self, candidate: C) -> Hashable:
        raise NotImplementedError

    def cache_key_for(self, query: Q, candidate: C) -> Hashable:
        """Key including query context when the value depends on the viewer (default: cache_key)."""
        return self.cache_key(candidate)

    def cache_value(self, hydrated: Any) -> Any:
        """What is stored for a client result (default: the result itself)."""
        return hydrated

    def hydrate_from_cache(self, value: Any) -> Any:
        """The hydration result for a cached value (default: the value itself)."""
        return value

    def already_hydrated(self, candidate: C) -> bool:
        """True when the candidate already carries the fields (e.g. from a cached-posts source)."""
        return False

    def from_candidate(self, candidate: C) -> Any:
        """The hydration result of an already-hydrated candidate (needed only with already_hydrated)."""
        raise NotImplementedError

    async def hydrate_from_client(self, query: Q, candidates: Sequence[C]) -> Sequence[Any]:
        raise NotImplementedError

    # -- algorithm

    async def hydrate(self, query: Q, candidates: Sequence[C]) -> list[Any]:
        n = len(candidates)
        out: list[Any] = [_EMPTY] * n
        miss_idx: list[int] = []
        miss_keys: list[Hashable] = []
        hits = 0
        for i, c in enumerate(candidates):
            if self.already_hydrated(c):
                out[i] = self.from_candidate(c)
                continue
            key = self.cache_key_for(query, c)
            value = self.cache.get(key)
            if value is None:
                miss_idx.append(i)
                miss_keys.append(key)
            else:
                out[i] = self.hydrate_from_cache(value)
                hits += 1
        ctx = current_context()
        pipeline = ctx.pipeline if ctx is not None else ""
        m.child(m.CACHE_LOOKUPS, pipeline, self.name, "hit").inc(hits)
        m.child(m.CACHE_LOOKUPS, pipeline, self.name, "miss").inc(len(miss_idx))
        if miss_idx:
            got = await self.hydrate_from_client(query, [candidates[i] for i in miss_idx])
            if len(got) != len(miss_idx):
                err = MissingHydration(
                    f"CachedHydrator length_mismatch expected={len(miss_idx)} got={len(got)}"
                )
                return [err] * n
            for i, key, r in zip(miss_idx, miss_keys, got, strict=True):
                if not isinstance(r, BaseException):
                    self.cache.insert(key, self.cache_value(r))
                out[i] = r
        for i, x in enumerate(out):
            if x is _EMPTY:
                out[i] = MissingHydration("Missing hydration result for candidate")
        return out
