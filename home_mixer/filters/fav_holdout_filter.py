"""Holds out a share of posts from each viewer by the post's fav count (reference FavHoldoutFilter,
Oct-7; the last pre-scoring filter; off by default: EnableFavHoldout false).

Holdout percent of a post (its original's fav count from the engagement counter; unknown = 0): 0 for
≤ 1 fav, else the first step whose threshold the count exceeds, scanning from the top (sheet §5.6):
>10000/5000/3000 → 15, >2000 → 14, >1500/1000 → 13, >750 → 12, >500 → 11, >300 → 10, >200 → 9,
>150 → 8, >100/75 → 7, >50/30 → 6, >20/15/10 → 5, >7/5 → 4, >3/2 → 3, >1 → 2.

Held out iff bucket(original post id, viewer id) < percent (capped at 100), with the reference
InventoryHoldoutFilter's splitmix64-style bucket (HM §3.7.4), all arithmetic wrapping at 64 bits:
z = post·0x9E3779B97F4A7C15 + rotl(viewer, 32)·0xD1B54A32D192ED03 + 0x9E3779B97F4A7C15;
z = (z ^ z>>30)·0xBF58476D1CE4E5B9; z = (z ^ z>>27)·0x94D049BB133111EB; z ^= z>>31; bucket = z mod 100.
A viewer is held out of the same posts on every request; a repost goes with its original."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15

# (fav count strictly above, holdout percent), scanned from the top; ≤ 1 fav -> 0
FAV_HOLDOUT_STEPS: tuple[tuple[int, int], ...] = (
    (10_000, 15),
    (5_000, 15),
    (3_000, 15),
    (2_000, 14),
    (1_500, 13),
    (1_000, 13),
    (750, 12),
    (500, 11),
    (300, 10),
    (200, 9),
    (150, 8),
    (100, 7),
    (75, 7),
    (50, 6),
    (30, 6),
    (20, 5),
    (15, 5),
    (10, 5),
    (7, 4),
    (5, 4),
    (3, 3),
    (2, 3),
    (1, 2),
)


def holdout_percent(fav_count: int | None) -> int:
    favs = fav_count or 0
    for threshold, percent in FAV_HOLDOUT_STEPS:
        if favs > threshold:
            return percent
    return 0


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & MASK64


def holdout_bucket(post_id: int, viewer_id: int) -> int:
    """The reference's splitmix64-style bucket of (post, viewer), in [0, 100)."""
    z = (post_id * GOLDEN + _rotl(viewer_id & MASK64, 32) * 0xD1B54A32D192ED03 + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return z % 100


def is_held_out(post_id: int, viewer_id: int, percent: int) -> bool:
    return holdout_bucket(post_id, viewer_id) < min(percent, 100)


class FavHoldoutFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def enable(self, query: ScoredPostsQuery) -> bool:
        return query.params.enable_fav_holdout

    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            pct = holdout_percent(c.fav_count)
            out = pct > 0 and is_held_out(c.original_post_id(), query.viewer_id, pct)
            (removed if out else kept).append(c)
        return FilterResult(kept, removed)
