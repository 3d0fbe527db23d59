"""FavHoldoutFilter (sheet §5.6, issue 19): the holdout percent table by fav count, the reference's
splitmix64 bucket (HM §3.7.4), the filter (off by default, a repost goes with its original) and its
place as the last pre-scoring filter."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from home_mixer.filters.fav_holdout_filter import (
    FavHoldoutFilter,
    holdout_bucket,
    holdout_percent,
    is_held_out,
)
from home_mixer.params import Params

# (fav count, percent): the sheet's steps, each "> k" threshold checked at k and k + 1
TABLE = [
    (None, 0), (0, 0), (1, 0), (2, 2), (3, 3), (4, 3), (5, 3), (6, 4), (7, 4), (8, 4), (10, 4),
    (11, 5), (15, 5), (16, 5), (20, 5), (21, 5), (30, 5), (31, 6), (50, 6), (51, 6), (75, 6),
    (76, 7), (100, 7), (101, 7), (150, 7), (151, 8), (200, 8), (201, 9), (300, 9), (301, 10),
    (500, 10), (501, 11), (750, 11), (751, 12), (1000, 12), (1001, 13), (1500, 13), (1501, 13),
    (2000, 13), (2001, 14), (3000, 14), (3001, 15), (5001, 15), (10_001, 15), (10**9, 15),
]  # fmt: skip


@pytest.mark.parametrize(("favs", "percent"), TABLE)
def test_holdout_percent_table(favs: int | None, percent: int) -> None:
    assert holdout_percent(favs) == percent


def _bucket_numpy(post: np.ndarray, viewer: np.ndarray) -> np.ndarray:
    """The same hash written independently with numpy's wrapping uint64 arithmetic."""
    with np.errstate(over="ignore"):
        p, v = post.astype(np.uint64), viewer.astype(np.uint64)
        rot = (v << np.uint64(32)) | (v >> np.uint64(32))
        g = np.uint64(0x9E3779B97F4A7C15)
        z = p * g + rot * np.uint64(0xD1B54A32D192ED03) + g
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(100)).astype(np.int64)


def test_bucket_is_the_reference_splitmix() -> None:
    # (0, 0): z starts at the golden gamma, so the bucket is splitmix64's first output from seed 0,
    # 0xE220A8397B1DCDAF, mod 100
    assert holdout_bucket(0, 0) == 0xE220A8397B1DCDAF % 100 == 35
    assert [holdout_bucket(p, v) for p, v in [(1, 1), (123456789, 42), (2124836114341575108, 861)]] == [
        48,
        19,
        27,
    ]
    rng = np.random.default_rng(0)
    posts = rng.integers(1, 1 << 63, size=2_000, dtype=np.int64)
    viewers = rng.integers(1, 1 << 63, size=2_000, dtype=np.int64)
    expect = _bucket_numpy(posts, viewers)
    got = [holdout_bucket(int(p), int(v)) for p, v in zip(posts, viewers, strict=True)]
    assert got == expect.tolist()


def test_holdout_share_matches_the_percent() -> None:
    post = 2124836114341575108
    for pct in (2, 7, 15):
        share = np.mean([is_held_out(post, v, pct) for v in range(1, 20_001)])
        assert share == pytest.approx(pct / 100, abs=0.006)
    assert not any(is_held_out(post, v, 0) for v in range(1, 1_000))
    assert all(is_held_out(post, v, 250) for v in range(1, 1_000))  # capped at 100


def test_filter(fakes: SimpleNamespace) -> None:
    viewer = 861
    f = FavHoldoutFilter()
    assert not f.enable(fakes.query(viewer))  # EnableFavHoldout false
    on = fakes.query(viewer, params=Params(enable_fav_holdout=True))
    assert f.enable(on)
    # posts with 3,001 favs (15 %): find one held out and one kept for this viewer
    ids = [fakes.pid(seq=i) for i in range(200)]
    held = next(p for p in ids if holdout_bucket(p, viewer) < 15)
    shown = next(p for p in ids if holdout_bucket(p, viewer) >= 15)
    low = next(p for p in ids if holdout_bucket(p, viewer) < 2)  # held out at any percent > 1
    cs = [
        fakes.cand(held, 10, fav_count=3_001),
        fakes.cand(shown, 11, fav_count=3_001),
        fakes.cand(low, 12, fav_count=1),  # ≤ 1 fav: never held out
        fakes.cand(fakes.pid(seq=5_000), 13),  # unknown count: 0 %
        # a repost is bucketed by its original
        fakes.cand(fakes.pid(seq=999), 14, retweeted_post_id=held, fav_count=3_001),
    ]
    kept, removed = f.filter(on, cs)
    assert [c.post_id for c in removed] == [held, cs[4].post_id]
    assert [c.post_id for c in kept] == [shown, low, cs[3].post_id]
    # the same viewer, the same posts: the same answer on every request
    assert [c.post_id for c in f.filter(on, cs).removed] == [held, cs[4].post_id]
