"""Ingester validation: events that decode but cannot be applied are rejected (-> dead-letter topic)."""

from __future__ import annotations

import pytest
import redis

from foryou.core.settings import Settings
from foryou.ingest.action_sequence_ingester import ActionSequenceIngester
from foryou.ingest.post_content_ingester import PostContentIngester
from foryou.ingest.social_graph_ingester import SocialGraphIngester
from protos import events_pb2 as ev

UE = ev.UserEventType
TS = 1_700_000_000_000  # engagement times must lie between the snowflake epoch and now (+ skew)


@pytest.fixture
def client() -> redis.Redis:
    return redis.Redis()  # never connected: decode does not touch Redis


def test_social_graph_decode(client: redis.Redis) -> None:
    ing = SocialGraphIngester(Settings(), client)
    ok = ev.UserEvent(user_id=1, type=UE.USER_EVENT_FOLLOW, target_user_id=2)
    assert ing.decode(ok.SerializeToString()) == ok
    bad = [
        ev.UserEvent(user_id=0, type=UE.USER_EVENT_FOLLOW, target_user_id=2),
        ev.UserEvent(user_id=1, type=UE.USER_EVENT_BLOCK),
        ev.UserEvent(user_id=1, type=UE.USER_EVENT_MUTED_KEYWORD_ADD, keyword="  "),
        ev.UserEvent(user_id=1, type=UE.USER_EVENT_PROFILE),
        ev.UserEvent(user_id=1, type=UE.USER_EVENT_UNSPECIFIED),
        ev.UserEvent(user_id=1, type=UE.USER_EVENT_FOLLOW, target_user_id=1),  # self-follow
        ev.UserEvent(user_id=1, type=UE.USER_EVENT_BLOCK, target_user_id=1),  # self-block
        ev.UserEvent(user_id=1, type=77, target_user_id=2),  # not in the enum
    ]
    for e in bad:
        with pytest.raises(ValueError):
            ing.decode(e.SerializeToString())
    with pytest.raises(Exception):  # noqa: B017 - protobuf's DecodeError
        ing.decode(b"\xff\xff\xff")


def test_post_and_engagement_decode(client: redis.Redis) -> None:
    posts = PostContentIngester(Settings(), client)
    good = ev.PostEvent(create=ev.Post(post_id=5, author_id=6))
    assert posts.decode(good.SerializeToString()) == good
    for e in (ev.PostEvent(), ev.PostEvent(create=ev.Post(post_id=5)), ev.PostEvent(delete=ev.PostDelete())):
        with pytest.raises(ValueError):
            posts.decode(e.SerializeToString())
    eng = ActionSequenceIngester(Settings(), client)
    ok = ev.EngagementEvent(user_id=1, post_id=2, author_id=3, action=ev.SERVER_TWEET_FAV, timestamp_ms=TS)
    assert eng.decode(ok.SerializeToString()) == ok
    for e in (
        ev.EngagementEvent(user_id=1, post_id=2, action=ev.INVALID, timestamp_ms=TS),
        ev.EngagementEvent(user_id=1, post_id=2, action=999, timestamp_ms=TS),
        ev.EngagementEvent(user_id=1, post_id=0, action=ev.SERVER_TWEET_FAV, timestamp_ms=TS),
        ev.EngagementEvent(user_id=1, post_id=2, action=ev.SERVER_TWEET_FAV),
        ev.EngagementEvent(user_id=1, post_id=2, action=ev.SERVER_TWEET_FAV, timestamp_ms=9),
        ev.EngagementEvent(
            user_id=1, post_id=2, action=ev.SERVER_TWEET_FAV, timestamp_ms=TS, product_surface=9
        ),
    ):
        with pytest.raises(ValueError):
            eng.decode(e.SerializeToString())
