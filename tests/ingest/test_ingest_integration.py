"""Publish a tiny world to the real broker, ingest into the real Redis, read back exactly the
expected graph, sequences, post data and author data; replay; malformed events go to the DLQ."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from foryou.core import user_state as us
from foryou.core.kafka import make_producer
from foryou.core.settings import Settings
from foryou.ingest.redis_ingester import IngestConfig
from foryou.ingest.runner import IngestService
from protos import events_pb2 as ev
from world import World, WorldConfig, generate_world
from world.publish import post_to_proto, publish_world, user_events

pytestmark = pytest.mark.integration


def _world() -> World:
    # small and fresh (now = wall clock) so post TTLs are the real ones
    cfg = WorldConfig.tiny(seed=5, n_users=120, n_authors=30, n_posts=600, n_impressions=5_000)
    return generate_world(cfg.replace(now_ms=int(time.time() * 1000)))


# engagement counters (HINCRBY/ZINCRBY) are at-least-once tallies, not replay-idempotent state:
# a second consuming pass adds to them by design (docs/home_mixer.md, popular posts)
COUNTERS = ("counts:", "popular:")


def _snapshot(r: redis.Redis, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in r.scan_iter(match=f"{prefix}*", count=1000):
        k = key.decode()
        if k.removeprefix(prefix).startswith(COUNTERS):
            continue
        t = r.type(key).decode()
        if t == "set":
            out[k] = sorted(r.smembers(key))
        elif t == "hash":
            out[k] = sorted(r.hgetall(key).items())
        else:
            out[k] = r.get(key)
    return out


def _expected_sequences(world: World, cap: int) -> dict[int, pl.DataFrame]:
    """Independent of merge_sequence: group the log per (user, post) with polars."""
    action = world.engagements["action"].to_numpy().astype(np.uint64)
    bit = np.where(action < 64, np.left_shift(np.uint64(1), action % np.uint64(64)), np.uint64(0))
    e = world.engagements.with_columns(pl.Series("bit", bit, dtype=pl.UInt64))
    items = (
        e.group_by("user_id", "post_id")
        .agg(
            pl.col("author_id").first(),
            pl.col("bit").bitwise_or().alias("action_mask"),
            pl.col("product_surface").first(),
            pl.col("timestamp_ms").min(),
            pl.col("dwell_ms").max(),
        )
        .sort("user_id", "timestamp_ms", "post_id")
    )
    return {u: g.tail(cap) for (u,), g in items.group_by("user_id", maintain_order=True)}


def _dlq_messages(settings: Settings, topic: str, expect: int, timeout_s: float = 20.0) -> list[Any]:
    c = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": "dlq-check", "enable.auto.commit": False}
    )
    c.assign([TopicPartition(settings.dlq_topic(topic), 0, 0)])
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expect and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    c.close()
    return got


def test_publish_ingest_read_back_replay_and_dlq(settings: Settings) -> None:
    world = _world()
    stats = publish_world(world, settings, progress=True)
    n_user_events = user_events(world).height
    assert stats.engagements == world.engagements.height
    assert stats.posts == world.posts.height and stats.deletes == len(world.deleted_post_ids) > 0
    assert stats.user_events == n_user_events

    # malformed: undecodable bytes and a decodable but invalid event
    eng_topic = settings.topic(settings.engagements_topic)
    ue_topic = settings.topic(settings.user_events_topic)
    prod = make_producer(settings)
    prod.produce(eng_topic, key=b"1", value=b"\xff\xff not a protobuf")
    prod.produce(
        ue_topic, key=b"0", value=ev.UserEvent(user_id=0, type=ev.USER_EVENT_FOLLOW).SerializeToString()
    )
    prod.flush(10)

    cap = 32  # small cap so that active users overflow it
    r = redis.Redis.from_url(settings.redis_url)
    p = settings.redis_prefix
    with IngestService(settings, IngestConfig(seq_cap=cap)) as svc:
        assert svc.wait_caught_up(90), svc.stats()
        st = svc.stats()
    assert st["action-sequence"].malformed == 1 and st["social-graph"].malformed == 1
    assert st["action-sequence"].applied == world.engagements.height
    assert st["post-content"].applied == world.posts.height + len(world.deleted_post_ids)

    # social graph, exactly
    f = world.follows
    mk = world.muted_keywords
    for uid in world.users["user_id"].to_list():
        g = us.read_social_graph(r, uid, p)

        def edges(kind: str, uid: int = uid) -> set[int]:
            return set(
                f.filter((pl.col("user_id") == uid) & (pl.col("kind") == kind))["target_user_id"].to_list()
            )

        assert g.following == edges("follow")
        assert (
            g.blocked == edges("block") and g.muted == edges("mute") and g.subscriptions == edges("subscribe")
        )
        assert g.muted_keywords == set(mk.filter(pl.col("user_id") == uid)["keyword"].to_list())

    # author data: screen names for everyone, follower counts of authors
    ids = world.authors["author_id"].to_list() + world.users["user_id"].to_list()[:5]
    got = us.mget_authors(r, ids, p)
    names = dict(zip(world.authors["author_id"], world.authors["screen_name"], strict=True))
    names |= dict(zip(world.users["user_id"], world.users["screen_name"], strict=True))
    counts = dict(zip(world.authors["author_id"], world.authors["follower_count"], strict=True))
    # a user's followers are the authors who followed it back (mutual follows)
    backs = f.filter(pl.col("kind") == "follow_back")
    assert backs.height > 0
    back_counts = backs.group_by("target_user_id").len()
    counts |= dict(zip(back_counts["target_user_id"], back_counts["len"], strict=True))
    assert got == [us.AuthorData(i, names[i], int(counts.get(i, 0))) for i in ids]
    for uid in backs["target_user_id"].unique().head(5).to_list():
        followers = {int(x) for x in r.smembers(us.social_key("followers", uid, p))}
        assert followers == set(backs.filter(pl.col("target_user_id") == uid)["user_id"].to_list())

    # post core data: every live post exactly as published, deleted ones gone, TTL past retention
    post_ids = world.posts["post_id"].to_list()
    posts = us.mget_posts(r, post_ids, p)
    deleted = set(world.deleted_post_ids.tolist())
    for row, got_post in zip(world.posts.to_dicts(), posts, strict=True):
        if row["post_id"] in deleted:
            assert got_post is None
        else:
            assert got_post == post_to_proto(row)
    ttl_ms = r.pttl(us.post_key(post_ids[-1], p))
    assert us.RETENTION_MS < ttl_ms <= us.RETENTION_MS + us.POST_TTL_MARGIN_MS

    # action sequences: exactly the newest `cap` merged impressions per user
    expected = _expected_sequences(world, cap)
    assert max(len(v) for v in expected.values()) == cap  # the cap is exercised
    for uid, exp in expected.items():
        seq = us.read_action_sequence(r, uid, p)
        for col in ("post_id", "author_id", "action_mask", "product_surface", "timestamp_ms", "dwell_ms"):
            assert np.array_equal(seq[col], exp[col].to_numpy()), (uid, col)
    proto = us.action_sequence_to_proto(us.read_action_sequence(r, next(iter(expected)), p))
    assert len(proto.items) == len(expected[next(iter(expected))])

    # replay everything again (fresh consumer groups) over the same Redis: same state
    before = _snapshot(r, p)
    assert len(before) > 1000
    with IngestService(settings, IngestConfig(seq_cap=cap, group_prefix="replay")) as svc2:
        assert svc2.wait_caught_up(90), svc2.stats()
        assert svc2.stats()["action-sequence"].applied == world.engagements.height
    assert _snapshot(r, p) == before

    # the malformed messages are on the dead-letter topics with their origin in headers
    for topic in (eng_topic, ue_topic):
        # once per consuming group and pass; `engagements` has two consuming ingesters
        expect = 4 if topic == eng_topic else 2
        msgs = _dlq_messages(settings, topic, expect=expect)
        assert len(msgs) == expect
        headers = dict(msgs[0].headers())
        assert headers["dlq.topic"].decode() == topic
        # undecodable bytes -> "decode: ...", a decodable but invalid event -> "invalid: ..."
        assert headers["dlq.reason"].startswith(b"decode" if topic == eng_topic else b"invalid")
        assert int(headers["dlq.offset"]) >= 0
        # which consumer set it aside: one copy per consuming group
        groups = {dict(m.headers())["dlq.consumer_group"] for m in msgs}
        assert len(groups) == expect and all(g.startswith(settings.topic_prefix.encode()) for g in groups)
