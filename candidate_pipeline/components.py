"""Stage base types. Each component is named after its class, may be switched off per query with
`enable`, and may carry its own `timeout_s` (None -> the pipeline's default)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

Q = TypeVar("Q")
C = TypeVar("C")


class Component:
    timeout_s: float | None = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def enable(self, query: Any) -> bool:
        return True


class QueryHydrator(Component, Generic[Q]):
    """Fetches part of the query (e.g. the viewer's social graph); `update` writes only its fields."""

    async def hydrate(self, query: Q) -> Any:
        raise NotImplementedError

    def update(self, query: Q, hydrated: Any) -> None:
        raise NotImplementedError


class Source(Component, Generic[Q, C]):
    async def get_candidates(self, query: Q) -> list[C]:
        raise NotImplementedError


class Hydrator(Component, Generic[Q, C]):
    """Returns one result per candidate, in order: a value for `update`, or an Exception for a
    candidate it could not hydrate (that candidate keeps its old fields)."""

    async def hydrate(self, query: Q, candidates: Sequence[C]) -> Sequence[Any]:
        raise NotImplementedError

    def update(self, candidate: C, hydrated: Any) -> None:
        raise NotImplementedError

    def update_all(self, candidates: Sequence[C], results: Sequence[Any]) -> None:
        for c, r in zip(candidates, results, strict=True):
            if not isinstance(r, BaseException):
                self.update(c, r)


class Scorer(Hydrator[Q, C]):
    """Like a hydrator, but runs sequentially after filtering and sees earlier scorers' fields."""

    async def score(self, query: Q, candidates: Sequence[C]) -> Sequence[Any]:
        raise NotImplementedError

    async def hydrate(self, query: Q, candidates: Sequence[C]) -> Sequence[Any]:
        return await self.score(query, candidates)


class Filter(Component, Generic[Q, C]):
    """`filter` returns (kept, removed); it may be sync or async."""

    def filter(self, query: Q, candidates: list[C]) -> Any:
        raise NotImplementedError


class Selector(Component, Generic[Q, C]):
    """Sorts by `score` descending and splits at `size`; NaN and ±inf sink below every finite score."""

    size: int | None = None

    def score(self, candidate: C) -> float:
        raise NotImplementedError

    def select(self, query: Q, candidates: list[C]) -> tuple[list[C], list[C]]:
        def key(c: C) -> float:
            s = self.score(c)
            return s if s is not None and math.isfinite(s) else -math.inf

        ordered = sorted(candidates, key=key, reverse=True)  # stable: ties keep input order
        n = len(ordered) if self.size is None else min(self.size, len(ordered))
        return ordered[:n], ordered[n:]


class SideEffect(Component, Generic[Q, C]):
    """Runs after the response is built; its result and errors never reach the caller."""

    async def run(self, query: Q, selected: Sequence[C], non_selected: Sequence[C]) -> None:
        raise NotImplementedError
