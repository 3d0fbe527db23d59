"""The ranking handler's score cache: (model version, history fingerprint, candidate post, author,
surface) -> (probs[64], continuous[8]). Valid because a candidate's scores depend only on the
user/history and itself (candidate isolation). Entries live `ttl_s` from their last write;
beyond `max_entries` the least recently used go first."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence

import numpy as np
from cachetools import TTLCache
from prometheus_client import Counter

SCORE_CACHE = Counter("phoenix_ranker_score_cache_total", "Candidate score-cache lookups", ["result"])

Scores = tuple[np.ndarray, np.ndarray]


class ScoreCache:
    def __init__(self, ttl_s: float, max_entries: int, timer: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        # TTLCache needs maxsize >= 1; max_entries <= 0 disables the cache (put_many stores nothing)
        self._d: TTLCache[Hashable, Scores] = TTLCache(max(max_entries, 1), ttl_s, timer=timer)
        self._lock = threading.Lock()  # cachetools caches are not thread-safe
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Sequence[Hashable]) -> list[Scores | None]:
        """The cached scores of each key (None = miss); counts hits and misses, here and in
        Prometheus."""
        out: list[Scores | None] = []
        with self._lock:
            for k in keys:
                # d[k] over d.get(k): TTLCache.get looks a hit up twice (3x slower on hits)
                try:
                    out.append(self._d[k])
                except KeyError:
                    out.append(None)
            hits = sum(v is not None for v in out)
            self.hits += hits
            self.misses += len(out) - hits
        SCORE_CACHE.labels("hit").inc(hits)
        SCORE_CACHE.labels("miss").inc(len(out) - hits)
        return out

    def put_many(self, keys: Sequence[Hashable], probs: np.ndarray, cont: np.ndarray) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            for i, k in enumerate(keys):
                self._d[k] = (probs[i], cont[i])

    def __len__(self) -> int:
        with self._lock:
            self._d.expire()
            return len(self._d)
