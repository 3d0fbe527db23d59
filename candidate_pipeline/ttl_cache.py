"""Bounded in-process cache with a time-to-live: the default store of a CachedHydrator."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CacheStore(Protocol[K, V]):
    def get(self, key: K) -> V | None: ...

    def insert(self, key: K, value: V) -> None: ...


class TtlCache(Generic[K, V]):
    """LRU-bounded dict whose entries expire `ttl_s` after insertion. `None` cannot be cached (it
    means "miss"); cache a sentinel value for negative results."""

    def __init__(
        self, max_entries: int = 100_000, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries <= 0 or ttl_s <= 0:
            raise ValueError("max_entries and ttl_s must be positive")
        self.max_entries, self.ttl_s, self.clock = max_entries, ttl_s, clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self.clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def insert(self, key: K, value: V) -> None:
        self._data[key] = (self.clock() + self.ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
