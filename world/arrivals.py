"""A world that keeps happening while the system runs (`foryou simulate`): the world is generated
with its `now` at the end of the simulation, the part before the start is published up front
(`past`), and the rest arrives on Kafka as the clock passes it: posts created and deleted on
`posts` (`PostArrivals`), and graph edges the simulated users make on `user-events`
(`publish_graph_edges`). Same messages as `world.publish`."""

from __future__ import annotations

import dataclasses

import polars as pl
from confluent_kafka import Producer

from foryou.core.settings import Settings
from protos import events_pb2 as ev
from world.publish import post_to_proto
from world.world import World


def past(world: World, t0_ms: int) -> World:
    """What had happened by `t0_ms`: posts created by then (deletions after it not yet), and the
    engagement log, oracle, graph and muted keywords up to then."""
    posts = world.posts.filter(pl.col("created_at_ms") <= t0_ms).with_columns(
        pl.when(pl.col("deleted_at_ms") > t0_ms)
        .then(0)
        .otherwise(pl.col("deleted_at_ms"))
        .alias("deleted_at_ms")
    )
    return dataclasses.replace(
        world,
        posts=posts,
        engagements=world.engagements.filter(pl.col("timestamp_ms") <= t0_ms),
        oracle=world.oracle.filter(pl.col("timestamp_ms") <= t0_ms),
        follows=world.follows.filter(pl.col("created_at_ms") <= t0_ms),
        muted_keywords=world.muted_keywords.filter(pl.col("created_at_ms") <= t0_ms),
    )


class PostArrivals:
    """The world's posts created (and deleted) after `t0_ms`, published once the clock passes
    their time: `publish_due(now_ms)` each round."""

    def __init__(self, world: World, t0_ms: int, settings: Settings, producer: Producer) -> None:
        self.settings, self.producer = settings, producer
        self.topic = settings.topic(settings.posts_topic)
        # (time, 0 = create / 1 = delete, row): a post is created before it is deleted
        creates = world.posts.filter(pl.col("created_at_ms") > t0_ms).sort("created_at_ms", "post_id")
        deletes = world.deletes.filter(pl.col("deleted_at_ms") > t0_ms).sort("deleted_at_ms", "post_id")
        self._queue: list[tuple[int, int, dict]] = sorted(
            [(r["created_at_ms"], 0, r) for r in creates.to_dicts()]
            + [(r["deleted_at_ms"], 1, r) for r in deletes.to_dicts()],
            key=lambda t: (t[0], t[1], t[2]["post_id"]),
        )
        self._next = 0
        self.published = {"creates": 0, "deletes": 0}

    @property
    def pending(self) -> int:
        return len(self._queue) - self._next

    def publish_due(self, now_ms: int) -> tuple[int, int]:
        """Publish every create / delete at or before `now_ms`; (creates, deletes) published."""
        creates = deletes = 0
        while self._next < len(self._queue) and self._queue[self._next][0] <= now_ms:
            t, kind, row = self._queue[self._next]
            if kind == 0:
                value = ev.PostEvent(create=post_to_proto(row)).SerializeToString()
                creates += 1
            else:
                value = ev.PostEvent(
                    delete=ev.PostDelete(post_id=row["post_id"], author_id=row["author_id"], deleted_at_ms=t)
                ).SerializeToString()
                deletes += 1
            self.producer.produce(self.topic, key=str(row["author_id"]).encode(), value=value, timestamp=t)
            self._next += 1
        self.producer.poll(0)
        self.published["creates"] += creates
        self.published["deletes"] += deletes
        return creates, deletes


def publish_graph_edges(
    settings: Settings, producer: Producer, edges: list[tuple[int, int, int]], now_ms: int
) -> int:
    """(user id, target user id, UserEventType) edges as user events, keyed by user like
    `world.publish`; returns how many."""
    topic = settings.topic(settings.user_events_topic)
    for user, target, kind in edges:
        msg = ev.UserEvent(user_id=user, type=kind, target_user_id=target, timestamp_ms=now_ms)
        producer.produce(topic, key=str(user).encode(), value=msg.SerializeToString(), timestamp=now_ms)
    producer.poll(0)
    return len(edges)
