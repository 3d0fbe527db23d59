"""The ranking handler's score cache: (model version, history fingerprint, candidate post, author,
surface) -> (probs[64], continuous[8]). Valid because a candidate's scores depend only on the
user/history and itself (candidate isolation). Entries live `ttl_s` from their last write;
beyond `max_entries` the least recently used go first.

A request looks up and stores thousands of candidates at once, so both are batch operations: the
scores live in row buffers preallocated for `max_entries` (one slot per entry: memory is bounded,
and a cached row never pins its request's arrays; untouched pages cost nothing), the keys in an
LRU-ordered dict of slots. A lookup maps the dict over the keys in C and copies the hit rows in one
numpy operation (per-key cachetools lookups cost ~0.7 µs a key, ~5 ms for 2,000 new candidates); a
write is one short loop over the dict and one copy. An expired entry is a miss and keeps its slot
until it is written again or evicted."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from itertools import compress, repeat

import numpy as np
from prometheus_client import Counter

from phoenix.ranker.config import NUM_ACTIONS, NUM_CONTINUOUS

SCORE_CACHE = Counter("phoenix_ranker_score_cache_total", "Candidate score-cache lookups", ["result"])

Scores = tuple[np.ndarray, np.ndarray]


class ScoreCache:
    def __init__(self, ttl_s: float, max_entries: int, timer: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries  # max_entries <= 0 disables the cache
        self._timer = timer
        self._lock = threading.Lock()
        self._slots: OrderedDict[Hashable, int] = OrderedDict()  # least recently used first
        size = max(max_entries, 0)
        self._probs = np.zeros((size, NUM_ACTIONS), np.float32)
        self._cont = np.zeros((size, NUM_CONTINUOUS), np.float32)
        self._written = np.zeros(size, np.float64)  # last write time per slot
        self.hits = 0
        self.misses = 0

    def lookup(self, keys: Sequence[Hashable], probs: np.ndarray, cont: np.ndarray) -> np.ndarray:
        """Copy the cached scores of `keys` into the same rows of `probs` / `cont`; returns the
        indices of the misses. Counts hits and misses, here and in Prometheus."""
        n = len(keys)
        hit = np.zeros(n, dtype=bool)
        with self._lock:
            if self._slots:
                slots = np.fromiter(map(self._slots.get, keys, repeat(-1)), np.int64, n)
                found = np.flatnonzero(slots >= 0)
                fresh = found[self._written[slots[found]] > self._timer() - self.ttl_s]
                hit[fresh] = True
                probs[fresh] = self._probs[slots[fresh]]
                cont[fresh] = self._cont[slots[fresh]]
                deque(map(self._slots.move_to_end, compress(keys, hit.tolist())), maxlen=0)
            misses = np.flatnonzero(~hit)
            self.hits += n - len(misses)
            self.misses += len(misses)
        SCORE_CACHE.labels("hit").inc(n - len(misses))
        SCORE_CACHE.labels("miss").inc(len(misses))
        return misses

    def get_many(self, keys: Sequence[Hashable]) -> list[Scores | None]:
        """`lookup` key by key: the cached (probs, continuous) of each key, None for a miss."""
        probs = np.empty((len(keys), NUM_ACTIONS), np.float32)
        cont = np.empty((len(keys), NUM_CONTINUOUS), np.float32)
        missed = set(self.lookup(keys, probs, cont).tolist())
        return [None if i in missed else (probs[i], cont[i]) for i in range(len(keys))]

    def put_many(self, keys: Sequence[Hashable], probs: np.ndarray, cont: np.ndarray) -> None:
        """Store row i of `probs` / `cont` under keys[i]; a write restarts the entry's TTL."""
        m = self.max_entries
        if m <= 0 or not len(keys):
            return
        if len(keys) > m:  # only the last max_entries can stay; no slot is reused within a batch
            keys, probs, cont = keys[-m:], probs[-m:], cont[-m:]
        with self._lock:
            d = self._slots
            slots = np.empty(len(keys), np.int64)
            for i, k in enumerate(keys):
                s = d.get(k)
                if s is not None:
                    d.move_to_end(k)
                else:  # a free slot while filling up, then the least recently used entry's
                    s = len(d) if len(d) < m else d.popitem(last=False)[1]
                    d[k] = s
                slots[i] = s
            self._probs[slots] = probs
            self._cont[slots] = cont
            self._written[slots] = self._timer()

    def __len__(self) -> int:
        """Entries not expired."""
        with self._lock:
            slots = np.fromiter(self._slots.values(), np.int64, len(self._slots))
            return int((self._written[slots] > self._timer() - self.ttl_s).sum())
