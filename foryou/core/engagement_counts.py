"""Per-post engagement counts in Redis (written by foryou.ingest's EngagementCountsIngester from the
`engagements` topic, read by home_mixer): the reference's engagement counter (view_count_on_home,
fav_count) and the input of its popular-posts list.

Keys (prefix = Settings.redis_prefix):
  {p}counts:{post_id}   HASH views (home-timeline impressions), favs; TTL COUNTS_TTL_S past the
                        last update (posts older than 48 h are never candidates)
  {p}popular:{hour}     ZSET member "<post_id>:<author_id>", score = views; one key per creation
                        hour of the post (from its snowflake id), TTL POPULAR_TTL_S, trimmed to the
                        POPULAR_BUCKET_MAX most viewed: the popular-posts source reads the last 24
                        hours' buckets and projects each post's views to 24 h."""

from __future__ import annotations

import math

COUNTS_TTL_S = 48 * 3600
POPULAR_TTL_S = 26 * 3600
POPULAR_BUCKET_MAX = 2_000
POPULAR_WINDOW_H = 24  # reference popular-posts job: posts older than 24 h are dropped
POPULAR_HALF_LIFE_H = 8.0  # reference: λ = ln 2 / 8 h
HOUR_MS = 3_600_000


def counts_key(post_id: int, prefix: str) -> str:
    return f"{prefix}counts:{post_id}"


def popular_key(hour: int, prefix: str) -> str:
    return f"{prefix}popular:{hour}"


def popular_member(post_id: int, author_id: int) -> str:
    return f"{post_id}:{author_id}"


def parse_popular_member(raw: bytes | str) -> tuple[int, int]:
    s = raw.decode() if isinstance(raw, bytes) else raw
    post, author = s.split(":", 1)
    return int(post), int(author)


def projected_views(views: float, age_h: float, half_life_h: float = POPULAR_HALF_LIFE_H) -> float:
    """Reference popular-posts quality: views × (1 − e^(−λ·24)) / (1 − e^(−λ·max(age_h, 0.5))),
    λ = ln 2 / half-life, i.e. the views projected to 24 h (factor 20.64 at ≤ 0.5 h, 1.0 at 24 h)."""
    lam = math.log(2) / half_life_h
    return views * (1 - math.exp(-lam * 24)) / (1 - math.exp(-lam * max(age_h, 0.5)))
