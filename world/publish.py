"""Publish a synthetic world to Kafka in time order: user events (profiles, graph, muted keywords)
to `user-events`, post creates and deletes to `posts`, the engagement log to `engagements`.
Message keys are decimal ids (author_id for posts, user_id otherwise); message timestamps are the
events' own times, so replay can filter on them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from confluent_kafka import Producer

from foryou.core.events import POST_REF_FIELDS
from foryou.core.kafka import ensure_topics, make_producer
from foryou.core.settings import Settings
from protos import events_pb2 as ev
from world import World

UE = ev.UserEventType
GRAPH_EVENT = {
    "follow": UE.USER_EVENT_FOLLOW,
    "follow_back": UE.USER_EVENT_FOLLOW,  # an author follows one of its followers (mutual follow)
    "block": UE.USER_EVENT_BLOCK,
    "mute": UE.USER_EVENT_MUTE,
    "subscribe": UE.USER_EVENT_SUBSCRIBE,
}
# streams in tie-break order: the graph exists before posts, posts before their engagements
STREAM_USER, STREAM_POST, STREAM_DELETE, STREAM_ENGAGEMENT = 0, 1, 2, 3


@dataclass
class PublishStats:
    posts: int = 0
    deletes: int = 0
    engagements: int = 0
    user_events: int = 0
    seconds: float = 0.0
    per_topic: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.posts + self.deletes + self.engagements + self.user_events


def post_to_proto(row: dict[str, Any]) -> ev.Post:
    """A world post row as a Post message; absent ids (0) stay unset optional fields."""
    p = ev.Post(
        post_id=row["post_id"],
        author_id=row["author_id"],
        created_at=row["created_at_ms"] // 1000,
        is_retweet=row["is_retweet"],
        is_reply=row["is_reply"],
        has_video=row["has_video"],
        text=row["text"],
        video_duration_ms=row["video_duration_ms"],
        subscriber_only=row["subscriber_only"],
        labels=row["labels"] or [],
        video_aspect_ratio=row.get("video_aspect_ratio") or 0.0,
    )
    for name in POST_REF_FIELDS:
        if row[name]:
            setattr(p, name, row[name])
    return p


def user_events(world: World) -> pl.DataFrame:
    """Every user event of the world, time ordered: a profile per user and author (before everything
    else; a new user's when its account is created), the graph edges (`follow_back` is a FOLLOW of
    the author's) and muted keywords. Columns: user_id, type, target_user_id, keyword, screen_name,
    timestamp_ms."""
    first = int(min(world.follows["created_at_ms"].min() or 0, world.posts["created_at_ms"].min())) - 60_000
    created = pl.col("created_at_ms") if "created_at_ms" in world.users.columns else pl.lit(0, pl.Int64)
    profiles = pl.concat(
        [
            world.users.select("user_id", "screen_name", created.alias("created")),
            world.authors.select(
                pl.col("author_id").alias("user_id"), "screen_name", pl.lit(0, pl.Int64).alias("created")
            ),
        ]
    ).with_columns(
        pl.lit(int(UE.USER_EVENT_PROFILE), pl.Int32).alias("type"),
        pl.lit(0, pl.Int64).alias("target_user_id"),
        pl.lit("").alias("keyword"),
        pl.max_horizontal(pl.lit(first, pl.Int64), pl.col("created")).alias("timestamp_ms"),
    )
    graph = world.follows.select(
        "user_id",
        pl.col("kind").replace_strict(GRAPH_EVENT, return_dtype=pl.Int32).alias("type"),
        "target_user_id",
        pl.lit("").alias("keyword"),
        pl.lit("").alias("screen_name"),
        pl.col("created_at_ms").alias("timestamp_ms"),
    )
    keywords = world.muted_keywords.select(
        "user_id",
        pl.lit(int(UE.USER_EVENT_MUTED_KEYWORD_ADD), pl.Int32).alias("type"),
        pl.lit(0, pl.Int64).alias("target_user_id"),
        "keyword",
        pl.lit("").alias("screen_name"),
        pl.col("created_at_ms").alias("timestamp_ms"),
    )
    cols = ["user_id", "type", "target_user_id", "keyword", "screen_name", "timestamp_ms"]
    return pl.concat([profiles.select(cols), graph.select(cols), keywords.select(cols)]).sort(
        "timestamp_ms", maintain_order=True
    )


def world_messages(world: World, settings: Settings) -> Iterator[tuple[str, bytes, bytes, int, int]]:
    """(topic, key, value, timestamp_ms, stream) for every event of the world, in time order."""
    ue = user_events(world)
    posts = world.posts
    dels = world.deletes
    eng = world.engagements
    ts = np.concatenate(
        [
            ue["timestamp_ms"].to_numpy(),
            posts["created_at_ms"].to_numpy(),
            dels["deleted_at_ms"].to_numpy(),
            eng["timestamp_ms"].to_numpy(),
        ]
    )
    stream = np.concatenate(
        [
            np.full(ue.height, STREAM_USER),
            np.full(posts.height, STREAM_POST),
            np.full(dels.height, STREAM_DELETE),
            np.full(eng.height, STREAM_ENGAGEMENT),
        ]
    )
    idx = np.concatenate(
        [np.arange(ue.height), np.arange(posts.height), np.arange(dels.height), np.arange(eng.height)]
    )
    order = np.lexsort((idx, stream, ts))
    t_user, t_posts, t_eng = (
        settings.topic(settings.user_events_topic),
        settings.topic(settings.posts_topic),
        settings.topic(settings.engagements_topic),
    )
    ue_rows = ue.rows()
    post_rows = posts.to_dicts()
    del_rows = dels.rows()
    eng_rows = eng.rows()
    for s, i in zip(stream[order].tolist(), idx[order].tolist(), strict=True):
        if s == STREAM_ENGAGEMENT:
            u, p, a, action, t, surface, dwell = eng_rows[i]
            msg = ev.EngagementEvent(
                user_id=u,
                post_id=p,
                author_id=a,
                action=action,
                timestamp_ms=t,
                product_surface=surface,
                dwell_ms=dwell,
            )
            yield t_eng, str(u).encode(), msg.SerializeToString(), t, s
        elif s == STREAM_POST:
            row = post_rows[i]
            value = ev.PostEvent(create=post_to_proto(row)).SerializeToString()
            yield t_posts, str(row["author_id"]).encode(), value, row["created_at_ms"], s
        elif s == STREAM_DELETE:
            pid, aid, t = del_rows[i]
            value = ev.PostEvent(
                delete=ev.PostDelete(post_id=pid, author_id=aid, deleted_at_ms=t)
            ).SerializeToString()
            yield t_posts, str(aid).encode(), value, t, s
        else:
            u, typ, target, kw, name, t = ue_rows[i]
            msg = ev.UserEvent(
                user_id=u, type=typ, target_user_id=target, keyword=kw, timestamp_ms=t, screen_name=name
            )
            yield t_user, str(u).encode(), msg.SerializeToString(), t, s


def publish_world(
    world: World,
    settings: Settings,
    rate: float | None = None,
    progress: bool = True,
    producer: Producer | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> PublishStats:
    """Publish every event of `world` in time order; `rate` = max events/s (None = as fast as possible)."""
    ensure_topics(settings, settings.topics())
    producer = producer or make_producer(settings)
    step = 1000 if not rate else max(1, min(1000, int(rate / 50)))  # pace in ~20 ms slices
    stats = PublishStats()
    total = world.engagements.height + world.posts.height + world.deletes.height + user_events(world).height
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    t0 = time.perf_counter()
    bar = None
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("publishing world"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
        )
        bar.start()
        task = bar.add_task("publish", total=total)
    try:
        for n, (topic, key, value, ts, s) in enumerate(world_messages(world, settings), start=1):
            while True:
                try:
                    producer.produce(topic, key=key, value=value, timestamp=ts, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            stats.per_topic[topic] = stats.per_topic.get(topic, 0) + 1
            if s == STREAM_ENGAGEMENT:
                stats.engagements += 1
            elif s == STREAM_POST:
                stats.posts += 1
            elif s == STREAM_DELETE:
                stats.deletes += 1
            else:
                stats.user_events += 1
            if n % step == 0:
                producer.poll(0)
                if bar is not None:
                    bar.update(task, completed=n)
                if on_progress is not None:
                    on_progress(n)
                if rate:
                    ahead = n / rate - (time.perf_counter() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        remaining = producer.flush(60)
        if remaining:
            raise RuntimeError(f"{remaining} messages still undelivered after 60 s")
        if errors:
            raise RuntimeError(f"{len(errors)} messages failed delivery, first: {errors[0]}")
        if bar is not None:
            bar.update(task, completed=total)
    finally:
        if bar is not None:
            bar.stop()
    stats.seconds = time.perf_counter() - t0
    return stats
