"""The publisher's event stream (no broker): complete, time ordered, decodable, correctly keyed."""

from __future__ import annotations

import polars as pl

from foryou.core.settings import Settings
from protos import events_pb2 as ev
from world import WorldConfig, generate_world
from world.publish import (
    STREAM_DELETE,
    STREAM_ENGAGEMENT,
    STREAM_POST,
    STREAM_USER,
    post_to_proto,
    world_messages,
)


def test_world_messages_are_complete_and_time_ordered() -> None:
    world = generate_world(
        WorldConfig.tiny(seed=2, n_users=60, n_authors=15, n_posts=300, n_impressions=1_500)
    )
    s = Settings(topic_prefix="x.")
    msgs = list(world_messages(world, s))
    ts = [m[3] for m in msgs]
    assert ts == sorted(ts)
    by_stream: dict[int, list] = {STREAM_USER: [], STREAM_POST: [], STREAM_DELETE: [], STREAM_ENGAGEMENT: []}
    for m in msgs:
        by_stream[m[4]].append(m)
    assert len(by_stream[STREAM_ENGAGEMENT]) == world.engagements.height
    assert len(by_stream[STREAM_POST]) == world.posts.height
    assert len(by_stream[STREAM_DELETE]) == len(world.deleted_post_ids)
    n_graph = world.follows.height + world.muted_keywords.height + world.users.height + world.authors.height
    assert len(by_stream[STREAM_USER]) == n_graph
    assert {m[0] for m in by_stream[STREAM_ENGAGEMENT]} == {"x.engagements"}
    assert {m[0] for m in by_stream[STREAM_USER]} == {"x.user-events"}
    # engagement events round-trip the log, keyed by user
    first = ev.EngagementEvent.FromString(by_stream[STREAM_ENGAGEMENT][0][2])
    row = world.engagements.row(0, named=True)
    assert (first.user_id, first.post_id, first.action, first.timestamp_ms) == (
        row["user_id"],
        row["post_id"],
        row["action"],
        row["timestamp_ms"],
    )
    assert by_stream[STREAM_ENGAGEMENT][0][1] == str(row["user_id"]).encode()
    # posts keyed by author; deletes come after their create
    created = {}
    for i, m in enumerate(msgs):
        if m[4] == STREAM_POST:
            pe = ev.PostEvent.FromString(m[2])
            assert m[1] == str(pe.create.author_id).encode()
            created[pe.create.post_id] = i
        elif m[4] == STREAM_DELETE:
            pe = ev.PostEvent.FromString(m[2])
            assert created[pe.delete.post_id] < i
    # profiles come first, so screen names exist before the graph references them; a new user's
    # profile comes when its account is created, before its own follows
    events = [ev.UserEvent.FromString(m[2]) for m in by_stream[STREAM_USER]]
    kinds = [e.type for e in events]
    new_users = world.users.filter(pl.col("created_at_ms") > 0)["user_id"].to_list()
    assert new_users
    n_profiles = world.users.height + world.authors.height - len(new_users)
    assert set(kinds[:n_profiles]) == {ev.USER_EVENT_PROFILE}
    for u in new_users:
        mine = [e.type for e in events if e.user_id == u]
        assert mine[0] == ev.USER_EVENT_PROFILE and set(mine[1:]) == {ev.USER_EVENT_FOLLOW}


def test_post_to_proto_optional_fields() -> None:
    world = generate_world(WorldConfig.tiny(seed=4))
    reply = world.posts.filter(pl.col("is_reply")).row(0, named=True)
    p = post_to_proto(reply)
    assert p.HasField("in_reply_to_post_id") and p.in_reply_to_post_id == reply["in_reply_to_post_id"]
    assert not p.HasField("source_post_id") and not p.HasField("quoted_post_id")
    assert p.created_at == reply["created_at_ms"] // 1000 and p.conversation_id == reply["conversation_id"]
    labelled = world.posts.filter(pl.col("labels").list.len() > 0).row(0, named=True)
    assert list(post_to_proto(labelled).labels) == labelled["labels"]
