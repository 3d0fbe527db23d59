"""engagements -> Redis per-post engagement counts (foryou.core.engagement_counts): home-timeline
impressions (`views`, the reference's view_count_on_home) and favorites (`favs`) per post, plus the
hourly popular-posts buckets (views per post, bucketed by the post's creation hour). Per batch: the
counts are summed in memory and written with one pipeline of HINCRBY / ZINCRBY. Counting is
at-least-once: a batch replayed after a crash counts twice (a count only gates cold start and
ranks popular posts, where a small excess is harmless)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from foryou.core.engagement_counts import (
    COUNTS_TTL_S,
    HOUR_MS,
    POPULAR_BUCKET_MAX,
    POPULAR_TTL_S,
    counts_key,
    popular_key,
    popular_member,
)
from foryou.core.events import decode_engagement_event
from foryou.core.kafka import Decoded
from foryou.core.snowflake import timestamp_ms
from foryou.ingest.redis_ingester import RedisIngester
from protos import events_pb2 as ev

HOME_SURFACES = frozenset({ev.PRODUCT_SURFACE_UNSPECIFIED, ev.PRODUCT_SURFACE_HOME_TIMELINE})


class EngagementCountsIngester(RedisIngester[ev.EngagementEvent]):
    name = "engagement-counts"
    logical_topic = "engagements_topic"
    rebuild_clears = ("counts:*", "popular:*")  # HINCRBY / ZINCRBY: a rebuild starts them at 0

    def decode(self, raw: bytes) -> ev.EngagementEvent:
        return decode_engagement_event(raw)

    def apply(self, batch: Sequence[Decoded[ev.EngagementEvent]]) -> None:
        views: Counter[tuple[int, int]] = Counter()
        favs: Counter[int] = Counter()
        for d in batch:
            e = d.value
            if e.action == ev.IMPRESSION and e.product_surface in HOME_SURFACES:
                views[(e.post_id, e.author_id)] += 1
            elif e.action == ev.SERVER_TWEET_FAV:
                favs[e.post_id] += 1
        if not views and not favs:
            return
        pipe = self.redis.pipeline(transaction=False)
        buckets: set[str] = set()
        for (post, author), n in views.items():
            key = counts_key(post, self.prefix)
            pipe.hincrby(key, "views", n)
            pipe.expire(key, COUNTS_TTL_S)
            bucket = popular_key(timestamp_ms(post) // HOUR_MS, self.prefix)
            pipe.zincrby(bucket, n, popular_member(post, author))
            buckets.add(bucket)
        for post, n in favs.items():
            key = counts_key(post, self.prefix)
            pipe.hincrby(key, "favs", n)
            pipe.expire(key, COUNTS_TTL_S)
        for bucket in buckets:
            pipe.zremrangebyrank(bucket, 0, -POPULAR_BUCKET_MAX - 1)  # keep the most viewed
            pipe.expire(bucket, POPULAR_TTL_S)
        pipe.execute()
