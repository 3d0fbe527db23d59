"""Each home_mixer filter: which candidates it keeps and which it removes; every filter returns a
FilterResult."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import home_mixer.filters
from candidate_pipeline import Filter, FilterResult
from foryou.core.snowflake import make_id
from home_mixer.filters.age_filter import AgeFilter
from home_mixer.filters.author_socialgraph_filter import AuthorSocialgraphFilter
from home_mixer.filters.core_data_hydration_filter import CoreDataHydrationFilter
from home_mixer.filters.dedup_conversation_filter import DedupConversationFilter
from home_mixer.filters.drop_duplicates_filter import DropDuplicatesFilter
from home_mixer.filters.fav_holdout_filter import FavHoldoutFilter
from home_mixer.filters.ineligible_subscription_filter import IneligibleSubscriptionFilter
from home_mixer.filters.muted_keyword_filter import MutedKeywordFilter
from home_mixer.filters.new_user_min_engagement_filter import NewUserMinEngagementFilter
from home_mixer.filters.oon_retweet_reply_filter import OONRetweetReplyFilter
from home_mixer.filters.previously_seen_posts_filter import PreviouslySeenPostsFilter
from home_mixer.filters.previously_served_posts_filter import PreviouslyServedPostsFilter
from home_mixer.filters.repost_deduplication_filter import RepostDeduplicationFilter
from home_mixer.filters.self_post_filter import SelfPostFilter
from home_mixer.filters.video_carousel_filter import VideoCarouselFilter
from home_mixer.filters.visibility_filter import VisibilityFilter
from home_mixer.params import Params
from home_mixer.query import UserFeatures

ALL_FILTERS: list[type[Filter]] = [
    AgeFilter,
    AuthorSocialgraphFilter,
    CoreDataHydrationFilter,
    DedupConversationFilter,
    DropDuplicatesFilter,
    FavHoldoutFilter,
    IneligibleSubscriptionFilter,
    MutedKeywordFilter,
    NewUserMinEngagementFilter,
    OONRetweetReplyFilter,
    PreviouslySeenPostsFilter,
    PreviouslyServedPostsFilter,
    RepostDeduplicationFilter,
    SelfPostFilter,
    VideoCarouselFilter,
    VisibilityFilter,
]


def ids(cs: list) -> list[int]:
    return [c.post_id for c in cs]


def test_all_filters_listed() -> None:
    files = list(Path(home_mixer.filters.__path__[0]).glob("*_filter.py"))
    assert len(files) == len(ALL_FILTERS) == 16


@pytest.mark.parametrize("cls", ALL_FILTERS, ids=lambda c: c.__name__)
def test_every_filter_returns_a_filter_result(cls: type[Filter], fakes: SimpleNamespace) -> None:
    q = fakes.query(user_features=UserFeatures(muted_keywords=("muted",)), seen_ids=frozenset({2}))
    cands = [fakes.cand(1, 10, text="hello", core_data_found=True), fakes.cand(2, 1, text="muted")]
    out = cls().filter(q, cands)
    assert isinstance(out, FilterResult)
    assert sorted(ids(out.kept) + ids(out.removed)) == [1, 2]


def test_drop_duplicates_first_wins(fakes: SimpleNamespace) -> None:
    a, b, a2 = (
        fakes.cand(1, 10, source="ThunderSource"),
        fakes.cand(2, 11),
        fakes.cand(1, 10, source="PhoenixSource"),
    )
    kept, removed = DropDuplicatesFilter().filter(fakes.query(), [a, b, a2])
    assert kept == [a, b] and removed == [a2]


def test_core_data_hydration_filter(fakes: SimpleNamespace) -> None:
    ok = fakes.cand(1, 10, text="hello", core_data_found=True)
    no_author = fakes.cand(2, 0, text="hello", core_data_found=True)
    media_only = fakes.cand(3, 10, text="   ", core_data_found=True)  # Oct: no text check
    missing = fakes.cand(4, 10, core_data_found=False)
    store_down = fakes.cand(5, 10, core_data_found=None)  # not looked up: kept (degraded)
    kept, removed = CoreDataHydrationFilter().filter(
        fakes.query(), [ok, no_author, media_only, missing, store_down]
    )
    assert ids(kept) == [1, 3, 5] and ids(removed) == [2, 4]


def test_age_filter_uses_snowflake_time(fakes: SimpleNamespace) -> None:
    fresh = fakes.cand(fakes.pid(age_s=60), 10)
    edge = fakes.cand(fakes.pid(age_s=48 * 3600 - 1), 11)
    old = fakes.cand(fakes.pid(age_s=48 * 3600 + 5), 12)
    future = fakes.cand(fakes.pid(age_s=-3600), 13)
    garbage = fakes.cand(-5, 14)
    kept, removed = AgeFilter().filter(fakes.query(), [fresh, edge, old, future, garbage])
    assert kept == [fresh, edge] and removed == [old, future, garbage]


def test_self_post_filter(fakes: SimpleNamespace) -> None:
    mine, theirs = fakes.cand(1, 7), fakes.cand(2, 8)
    kept, removed = SelfPostFilter().filter(fakes.query(viewer_id=7), [mine, theirs])
    assert kept == [theirs] and removed == [mine]


def test_repost_dedup_originals_always_kept(fakes: SimpleNamespace) -> None:
    orig = fakes.cand(100, 1)
    rp1 = fakes.cand(101, 2, retweeted_post_id=100, retweeted_user_id=1)  # original seen earlier
    rp2 = fakes.cand(102, 3, retweeted_post_id=200, retweeted_user_id=4)
    rp3 = fakes.cand(103, 5, retweeted_post_id=200, retweeted_user_id=4)  # second repost of 200
    orig200 = fakes.cand(200, 4)  # original after its reposts: kept (JAN semantics)
    kept, removed = RepostDeduplicationFilter().filter(fakes.query(), [orig, rp1, rp2, rp3, orig200])
    assert ids(kept) == [100, 102, 200] and ids(removed) == [101, 103]


def test_ineligible_subscription(fakes: SimpleNamespace) -> None:
    q = fakes.query(user_features=UserFeatures(subscriptions=frozenset({50})))
    public = fakes.cand(1, 10, subscription_checked=True)
    subscribed = fakes.cand(2, 50, subscription_author_id=50, subscription_checked=True)
    not_subscribed = fakes.cand(3, 60, subscription_author_id=60, subscription_checked=True)
    kept, removed = IneligibleSubscriptionFilter().filter(q, [public, subscribed, not_subscribed])
    assert kept == [public, subscribed] and removed == [not_subscribed]


def test_previously_seen_uses_related_ids(fakes: SimpleNamespace) -> None:
    q = fakes.query(seen_ids=frozenset({1, 500, 600}))
    seen = fakes.cand(1, 10)
    repost_of_seen = fakes.cand(2, 10, retweeted_post_id=500)
    reply_to_seen = fakes.cand(3, 10, in_reply_to_post_id=600)
    fresh = fakes.cand(4, 10, in_reply_to_post_id=700)
    f = PreviouslySeenPostsFilter()
    assert f.enable(q) and not f.enable(fakes.query())
    kept, removed = f.filter(q, [seen, repost_of_seen, reply_to_seen, fresh])
    assert kept == [fresh] and ids(removed) == [1, 2, 3]


def test_previously_served_on_every_request(fakes: SimpleNamespace) -> None:
    """EnableServedFilterAllRequests (true): top requests too; switched off, bottom requests only."""
    f = PreviouslyServedPostsFilter()
    top = fakes.query(served_ids=frozenset({1}))
    bottom = fakes.query(served_ids=frozenset({1, 9}), is_bottom_request=True)
    assert f.enable(top) and f.enable(bottom)
    off = Params(enable_served_filter_all_requests=False)
    assert not f.enable(fakes.query(params=off)) and f.enable(fakes.query(params=off, is_bottom_request=True))
    a, b, c = fakes.cand(1, 10), fakes.cand(2, 10, retweeted_post_id=9), fakes.cand(3, 10)
    kept, removed = f.filter(bottom, [a, b, c])
    assert kept == [c] and removed == [a, b]


def test_author_socialgraph_blocked_and_muted(fakes: SimpleNamespace) -> None:
    q = fakes.query(user_features=UserFeatures(blocked=frozenset({20}), muted=frozenset({30})))
    ok, blocked, muted = (fakes.cand(i, a, core_data_found=True) for i, a in ((1, 10), (2, 20), (3, 30)))
    repost_of_blocked = fakes.cand(4, 10, retweeted_post_id=99, retweeted_user_id=20, core_data_found=True)
    kept, removed = AuthorSocialgraphFilter().filter(q, [ok, blocked, muted, repost_of_blocked])
    assert kept == [ok] and removed == [blocked, muted, repost_of_blocked]


def test_visibility_rules(fakes: SimpleNamespace) -> None:
    known = {"core_data_found": True, "author_blocks_viewer": False}  # every input hydrated
    clean = fakes.cand(1, 10, in_network=False, **known)
    spam_in = fakes.cand(2, 10, in_network=True, labels=("spam",), **known)
    nsfw_in = fakes.cand(3, 10, in_network=True, labels=("nsfw",), **known)  # OON-only rule: kept in network
    nsfw_oon = fakes.cand(4, 11, in_network=False, labels=("nsfw",), **known)
    blocks_viewer = fakes.cand(5, 12, in_network=True, core_data_found=True, author_blocks_viewer=True)
    kept, removed = VisibilityFilter().filter(
        fakes.query(), [clean, spam_in, nsfw_in, nsfw_oon, blocks_viewer]
    )
    assert kept == [clean, nsfw_in]
    assert [c.visibility_reason for c in removed] == ["SpamLabel", "NsfwOutOfNetwork", "AuthorBlocksViewer"]


def test_dedup_conversation_keeps_best_in_earlier_slot(fakes: SimpleNamespace) -> None:
    root = fakes.cand(100, 1, score=0.5)
    other = fakes.cand(5, 2, score=0.9)
    reply = fakes.cand(101, 3, score=0.8, ancestors=[100])  # same conversation, strictly higher
    deep = fakes.cand(102, 4, score=0.8, ancestors=[101, 100])  # equal score: not strictly higher
    none_score = fakes.cand(7, 5, score=None, ancestors=[5])  # conversation 5, None counts 0
    kept, removed = DedupConversationFilter().filter(fakes.query(), [root, other, reply, deep, none_score])
    assert ids(kept) == [101, 5]  # the reply took the root's slot
    assert ids(removed) == [100, 102, 7]


def test_oon_retweet_reply_filter_reference_table(fakes: SimpleNamespace) -> None:
    """Sheet §5.4 with the default switch: OON repost, OON reply, in-network reply without
    ancestors and unknown-network reply without ancestors are removed; OON original, in-network
    repost, in-network reply with ancestors, in-network original and unknown-network repost kept."""
    oon_repost = fakes.cand(1, 50, in_network=False, retweeted_post_id=9)
    oon_reply = fakes.cand(2, 50, in_network=False, in_reply_to_post_id=9, ancestors=[9])
    in_reply_orphan = fakes.cand(3, 10, in_network=True, in_reply_to_post_id=9)
    unknown_reply_orphan = fakes.cand(4, 10, in_network=None, in_reply_to_post_id=9)
    oon_original = fakes.cand(5, 50, in_network=False)
    in_repost = fakes.cand(6, 10, in_network=True, retweeted_post_id=9)
    in_reply = fakes.cand(7, 10, in_network=True, in_reply_to_post_id=9, ancestors=[9])
    in_original = fakes.cand(8, 10, in_network=True)
    cs = [
        oon_repost,
        oon_reply,
        in_reply_orphan,
        unknown_reply_orphan,
        oon_original,
        in_repost,
        in_reply,
        in_original,
    ]
    kept, removed = OONRetweetReplyFilter().filter(fakes.query(), cs)
    assert ids(removed) == [1, 2, 3, 4] and ids(kept) == [5, 6, 7, 8]
    # EnablePhoenixOonReplies exempts OON replies from Phoenix retrieval only
    phoenix_reply = fakes.cand(
        9, 50, in_network=False, in_reply_to_post_id=9, ancestors=[9], served_type="ForYouPhoenixRetrieval"
    )
    q = fakes.query(params=Params(enable_phoenix_oon_replies=True))
    kept, removed = OONRetweetReplyFilter().filter(q, [phoenix_reply, oon_reply, oon_repost])
    assert kept == [phoenix_reply] and ids(removed) == [2, 1]


def test_new_user_min_engagement_filter(fakes: SimpleNamespace) -> None:
    new_viewer = make_id(fakes.NOW_MS - 600_000)  # account created 10 min ago
    on = Params(enable_new_user_min_engagement_filter=True, new_user_min_engagement_threshold=2.0)
    f = NewUserMinEngagementFilter()
    assert f.enable(fakes.query(new_viewer, params=on))
    assert not f.enable(fakes.query(new_viewer))  # off by default
    assert not f.enable(fakes.query(make_id(fakes.NOW_MS - 3_600_000), params=on))  # 1 h old
    assert not f.enable(fakes.query(7, params=on))  # sequential id: no account age
    cs = [
        fakes.cand(1, 50, in_network=False, fav_count=2),
        fakes.cand(2, 50, in_network=False, fav_count=1),
        fakes.cand(3, 50, in_network=False),
        fakes.cand(4, 10, in_network=True, fav_count=0),
    ]
    kept, removed = f.filter(fakes.query(new_viewer, params=on), cs)
    assert ids(kept) == [1, 4] and ids(removed) == [2, 3]
    assert ids(
        f.filter(fakes.query(new_viewer, params=Params(enable_new_user_min_engagement_filter=True)), cs).kept
    ) == [1, 2, 3, 4]
