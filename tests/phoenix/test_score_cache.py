"""ScoreCache: TTL from the last write, LRU bound, disabled at 0 entries, hit/miss counting."""

from __future__ import annotations

import numpy as np

from phoenix.ranker.score_cache import ScoreCache


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _scores(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n * 64, dtype=np.float32).reshape(n, 64), np.ones((n, 8), np.float32)


def test_hit_miss_and_ttl() -> None:
    clock = _Clock()
    c = ScoreCache(ttl_s=10.0, max_entries=100, timer=clock)
    probs, cont = _scores(2)
    c.put_many(["a", "b"], probs, cont)
    got = c.get_many(["a", "x", "b"])
    assert got[1] is None and c.hits == 2 and c.misses == 1
    np.testing.assert_array_equal(got[2][0], probs[1])
    clock.t = 9.0
    c.put_many(["b"], probs[1:], cont[1:])  # a write restarts the entry's TTL
    clock.t = 10.5
    assert [v is None for v in c.get_many(["a", "b"])] == [True, False]
    assert len(c) == 1


def test_lru_bound_evicts_least_recently_used() -> None:
    c = ScoreCache(ttl_s=100.0, max_entries=2, timer=_Clock())
    probs, cont = _scores(3)
    c.put_many(["a", "b"], probs[:2], cont[:2])
    c.get_many(["a"])  # a is now more recent than b
    c.put_many(["c"], probs[2:], cont[2:])
    assert [v is None for v in c.get_many(["a", "b", "c"])] == [False, True, False]
    assert len(c) == 2


def test_zero_entries_disables() -> None:
    c = ScoreCache(ttl_s=100.0, max_entries=0)
    probs, cont = _scores(1)
    c.put_many(["a"], probs, cont)
    assert c.get_many(["a"]) == [None] and len(c) == 0
