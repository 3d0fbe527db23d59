"""The popular-posts source (issue 19) and its engagement counts: the ingester's per-post counts and
hourly buckets in Redis, read back by home_mixer's Redis client; the global list (views projected
to 24 h, ≤ 5 per author, 500); the source (seen ids dropped, snapshot refreshed at most every 60 s);
and the semantic-ID source (off by default)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
import redis

from foryou.core.engagement_counts import HOUR_MS, projected_views
from foryou.core.kafka import Decoded
from foryou.core.settings import Settings
from foryou.ingest.engagement_counts_ingester import EngagementCountsIngester
from home_mixer.clients.redis_user_state import RedisUserState
from home_mixer.params import Params
from home_mixer.sources.popular_posts_source import PopularPostsSource, popular_list
from home_mixer.sources.sid_source import SidSource, sid_seeds
from protos import events_pb2 as ev
from protos import phoenix_pb2


def test_projected_views_reference_factors() -> None:
    """Sheet §5.1: the factor is 20.64 at ≤ 0.5 h, 5.50 at 2 h, 1.35 at 12 h, 1.0 at 24 h."""
    assert [round(projected_views(1.0, h), 2) for h in (0.1, 0.5, 2, 12, 24)] == [
        20.64,
        20.64,
        5.5,
        1.35,
        1.0,
    ]


def test_popular_list_projection_cap_and_window(fakes: SimpleNamespace) -> None:
    now = fakes.NOW_MS
    young = fakes.pid(age_s=1800, seq=1)  # 0.5 h: 10 views -> 206.4
    old = fakes.pid(age_s=23 * 3600, seq=2)  # 23 h: 150 views -> ~151
    stale = fakes.pid(age_s=25 * 3600, seq=3)  # older than 24 h: dropped
    rows = [(young, 1, 10), (old, 2, 150), (stale, 3, 10_000)]
    rows += [(fakes.pid(age_s=20 * 3600, seq=10 + i), 9, 100 - i) for i in range(7)]  # author 9: 7 posts
    got = popular_list(rows, now)
    assert got[:2] == [(young, 1), (old, 2)]
    assert [a for _, a in got].count(9) == 5 and (stale, 3) not in got
    assert got[2:] == [(fakes.pid(age_s=20 * 3600, seq=10 + i), 9) for i in range(5)]  # the best 5 of 9
    assert len(popular_list([(fakes.pid(age_s=60, seq=i), i, 5) for i in range(600)], now)) == 500
    tie = popular_list([(fakes.pid(age_s=60, seq=1), 1, 5), (fakes.pid(age_s=60, seq=2), 2, 5)], now)
    assert [a for _, a in tie] == [2, 1]  # equal quality: the higher post id first


def test_popular_posts_source(fakes: SimpleNamespace) -> None:
    store = fakes.UserState()
    a, b, c = (fakes.pid(age_s=600, seq=i) for i in range(3))
    store.popular = [(a, 11, 50), (b, 12, 40), (c, 13, 30)]
    src = PopularPostsSource(store)
    q = fakes.query(seen_ids=frozenset({b}), params=Params(popular_posts_max_results=1))
    assert src.enable(q) and not src.enable(fakes.query(in_network_only=True))
    assert not src.enable(fakes.query(params=Params(enable_popular_posts_source=False)))
    got = asyncio.run(src.get_candidates(q))
    assert [(x.post_id, x.author_id, x.served_type) for x in got] == [(a, 11, "ForYouPhoenixRetrieval")]
    got = asyncio.run(src.get_candidates(fakes.query(seen_ids=frozenset({a}))))
    assert [x.post_id for x in got] == [b, c]
    store.popular = []  # the snapshot is kept for 60 s: the store is not read again
    assert len(asyncio.run(src.get_candidates(fakes.query()))) == 3
    fresh = PopularPostsSource(store)
    assert asyncio.run(fresh.get_candidates(fakes.query())) == []  # an empty list: no candidates


@pytest.mark.integration
def test_ingested_counts_read_back_by_home_mixer(
    redis_url: str, unique_prefix: str, fakes: SimpleNamespace
) -> None:
    r = redis.Redis.from_url(redis_url)
    ing = EngagementCountsIngester(Settings(redis_url=redis_url, redis_prefix=unique_prefix), r)
    p1, p2 = fakes.pid(age_s=600, seq=1), fakes.pid(age_s=7200, seq=2)

    def event(
        post: int, author: int, action: int, surface: int = ev.PRODUCT_SURFACE_HOME_TIMELINE
    ) -> Decoded:  # type: ignore[type-arg]
        e = ev.EngagementEvent(
            user_id=5, post_id=post, author_id=author, action=action, product_surface=surface
        )
        return Decoded(e, "engagements", 0, 0, 0, None)

    batch = [event(p1, 11, ev.IMPRESSION) for _ in range(3)] + [event(p1, 11, ev.SERVER_TWEET_FAV)]
    batch += [event(p2, 12, ev.IMPRESSION), event(p2, 12, ev.IMPRESSION, ev.PRODUCT_SURFACE_RANKED_FOLLOWING)]
    ing.apply(batch)
    ing.apply([event(p1, 11, ev.IMPRESSION)])
    store = RedisUserState(redis_url, unique_prefix, timeout_s=5.0)

    async def read() -> tuple:  # type: ignore[type-arg]
        counts = await store.mget_engagement_counts([p1, p2, 999])
        hour = fakes.NOW_MS // HOUR_MS
        popular = await store.popular_posts(list(range(hour - 24, hour + 1)), 10)
        await store.close()
        return counts, popular

    counts, popular = asyncio.run(read())
    assert counts == [(4, 1), (1, 0), None]  # home-timeline impressions only
    assert sorted(popular) == sorted([(p1, 11, 4), (p2, 12, 1)])
    assert 0 < r.ttl(f"{unique_prefix}counts:{p1}") <= 48 * 3600


class FakeSid:
    def __init__(self) -> None:
        self.calls: list[tuple] = []  # type: ignore[type-arg]

    async def retrieve_by_sid(self, seeds, max_results, max_per_seed, min_depth):  # type: ignore[no-untyped-def]
        self.calls.append((list(seeds), max_results, max_per_seed, min_depth))
        return [(900, 90, 4), (901, 91, 3)]


def test_sid_source_off_by_default_and_seeds_newest_first(fakes: SimpleNamespace) -> None:
    seq = phoenix_pb2.ActionSequence()
    for post, ts in ((1, 10), (2, 30), (1, 40), (3, 20)):
        seq.items.add(post_id=post, author_id=9, action_mask=2, timestamp_ms=ts)
    client = FakeSid()
    src = SidSource(client)
    on = Params(enable_sid_source=True, sid_source_max_seeds=2)
    assert not src.enable(fakes.query(action_sequence=seq))  # EnableSidSource false
    assert not SidSource(None).enable(fakes.query(action_sequence=seq, params=on))  # no service
    assert not src.enable(fakes.query(params=on))  # no engagement signal
    assert not src.enable(fakes.query(action_sequence=seq, params=on, in_network_only=True))
    q = fakes.query(action_sequence=seq, params=on)
    assert src.enable(q) and sid_seeds(q) == [1, 2]  # newest first, de-duplicated, the first 2
    got = asyncio.run(src.get_candidates(q))
    assert client.calls == [([1, 2], 800, 100, 3)]
    assert [(c.post_id, c.served_type, c.retrieval_score) for c in got] == [
        (900, "ForYouPhoenixRetrievalMoe", 4.0),
        (901, "ForYouPhoenixRetrievalMoe", 3.0),
    ]
