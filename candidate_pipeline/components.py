"""Stage base types. Each component is named after its class, may be switched off per query with
`enable`, and may carry its own `timeout_s` (None -> the pipeline's default).

Hooks may be `async def` or plain `def` (a cheap vectorised scorer need not be a coroutine); the
pipeline awaits whatever is awaitable. Their base signatures return `MaybeAwaitable[...]` so both
kinds are valid overrides. The difference matters: once the request deadline has passed the
pipeline does not start an async hook, while a sync one still runs."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

from candidate_pipeline.filter_result import FilterResult

Q = TypeVar("Q")
C = TypeVar("C")
T = TypeVar("T")

MaybeAwaitable: TypeAlias = Awaitable[T] | T


class Component:
    timeout_s: float | None = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def enable(self, query: Any) -> bool:
        return True


class QueryHydrator(Component, Generic[Q]):
    """Fetches part of the query (e.g. the viewer's social graph). All query hydrators of a stage see
    the original query; `update` then writes only this hydrator's fields, in declaration order."""

    def hydrate(self, query: Q) -> MaybeAwaitable[Any]:
        raise NotImplementedError

    def update(self, query: Q, hydrated: Any) -> None:
        raise NotImplementedError


class Source(Component, Generic[Q, C]):
    def get_candidates(self, query: Q) -> MaybeAwaitable[list[C]]:
        raise NotImplementedError


class Hydrator(Component, Generic[Q, C]):
    """Returns one result per candidate, in order: a value for `update`, or an Exception for a
    candidate it could not hydrate (that candidate keeps its old fields). A result list of the wrong
    length is discarded as a whole."""

    def hydrate(self, query: Q, candidates: Sequence[C]) -> MaybeAwaitable[Sequence[Any]]:
        raise NotImplementedError

    def update(self, candidate: C, hydrated: Any) -> None:
        raise NotImplementedError

    def update_all(self, candidates: Sequence[C], results: Sequence[Any]) -> int | None:
        """Apply `results` (same length as `candidates`). Returns how many entries were errors, or
        None when unknown; overrides may skip the per-entry error check when they never return any."""
        failed = 0
        update = self.update
        for c, r in zip(candidates, results, strict=True):
            if isinstance(r, BaseException):
                failed += 1
            else:
                update(c, r)
        return failed


class Scorer(Hydrator[Q, C]):
    """Like a hydrator, but scorers run one after another after filtering, so each sees the fields
    written by earlier scorers. Implement `score`."""

    def score(self, query: Q, candidates: Sequence[C]) -> MaybeAwaitable[Sequence[Any]]:
        raise NotImplementedError

    def hydrate(self, query: Q, candidates: Sequence[C]) -> MaybeAwaitable[Sequence[Any]]:
        return self.score(query, candidates)


class Filter(Component, Generic[Q, C]):
    """`filter` returns a FilterResult(kept, removed) and may be sync or async. Every input candidate
    must be in exactly one of the two lists, else the filter's output is discarded (fail open)."""

    def filter(self, query: Q, candidates: list[C]) -> MaybeAwaitable[FilterResult[C]]:
        raise NotImplementedError


def sort_key(score: float | None) -> float:
    """Selector order key: NaN, ±inf and None sink below every finite score."""
    return score if score is not None and math.isfinite(score) else -math.inf


class Selector(Component, Generic[Q, C]):
    """Sorts by `score` descending (stable) and splits at `size_for(query)` into (selected,
    non_selected); NaN and ±inf sink below every finite score. No size -> everything selected."""

    size: int | None = None

    def size_for(self, query: Q) -> int | None:
        return self.size

    def score(self, candidate: C) -> float:
        raise NotImplementedError

    def select(self, query: Q, candidates: list[C]) -> tuple[list[C], list[C]]:
        keys = list(map(self.score, candidates))
        try:
            # a finite sum proves every score finite (inf/nan propagate), so the common case sorts
            # the raw floats; None raises TypeError and takes the slow path too
            all_finite = math.isfinite(sum(keys))
        except TypeError:
            all_finite = False
        if not all_finite:
            keys = [sort_key(k) for k in keys]
        order = sorted(range(len(candidates)), key=keys.__getitem__, reverse=True)  # stable
        ordered = list(map(candidates.__getitem__, order))
        size = self.size_for(query)
        n = len(ordered) if size is None else max(0, min(size, len(ordered)))
        return ordered[:n], ordered[n:]


class SideEffect(Component, Generic[Q, C]):
    """Runs after the response is built (never awaited by the caller); its result and errors are
    ignored apart from logs and metrics."""

    def run(self, query: Q, selected: Sequence[C], non_selected: Sequence[C]) -> MaybeAwaitable[None]:
        raise NotImplementedError
