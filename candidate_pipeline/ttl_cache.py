"""Bounded in-process cache with a time-to-live: the default store of a CachedHydrator. The LRU and
expiry bookkeeping is cachetools' TTLCache; this module only puts the CacheStore interface on it."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from cachetools import TTLCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class CacheStore(Protocol[K_contra, V]):
    """What a CachedHydrator needs of its cache: an in-process TtlCache, or e.g. a Redis-backed store.
    `get` returns None for a miss."""

    def get(self, key: K_contra) -> V | None: ...

    def insert(self, key: K_contra, value: V) -> None: ...


class TtlCache(Generic[K, V]):
    """At most `max_entries` entries (the least recently used go first), each expiring `ttl_s` after
    its insertion; a hit refreshes recency, not expiry. `None` cannot be cached (it means "miss");
    cache a sentinel value for negative results."""

    def __init__(
        self, max_entries: int = 100_000, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries <= 0 or ttl_s <= 0:
            raise ValueError("max_entries and ttl_s must be positive")
        self.max_entries, self.ttl_s, self.clock = max_entries, ttl_s, clock
        # wrapped rather than subclassed: cachetools' classes are not subscriptable at runtime
        self._data: TTLCache[K, V] = TTLCache(maxsize=max_entries, ttl=ttl_s, timer=clock)

    def __len__(self) -> int:
        """Entries not yet expired."""
        return len(self._data)

    def get(self, key: K) -> V | None:
        return self._data.get(key)

    def insert(self, key: K, value: V) -> None:
        self._data[key] = value
