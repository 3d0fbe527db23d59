"""What a Filter returns: the partition of its input into kept and removed candidates."""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

C = TypeVar("C")


class FilterResult(NamedTuple, Generic[C]):
    """`kept` goes on to the next filter, in order; `removed` is recorded under the filter's name.
    A NamedTuple, so `kept, removed = f.filter(query, candidates)` still unpacks."""

    kept: list[C]
    removed: list[C]
