"""`posts` topic -> PostStore. Creates are applied before deletes within a batch (the reference
ingests a batch's creates, then marks its deletes), so a create and its delete in the same batch
leave a tombstone and no post."""

from __future__ import annotations

from foryou.kafka import Decoded
from foryou.snowflake import created_at_secs
from protos import events_pb2 as ev
from thunder import metrics
from thunder.config import MIN_VIDEO_DURATION_MS
from thunder.store import PostRecord, PostStore


def decode_post_event(value: bytes) -> ev.PostEvent:
    msg = ev.PostEvent.FromString(value)
    kind = msg.WhichOneof("event")
    if kind == "create":
        c = msg.create
        if c.post_id <= 0 or c.author_id <= 0:
            raise ValueError("create without post_id/author_id")
    elif kind == "delete":
        if msg.delete.post_id <= 0:
            raise ValueError("delete without post_id")
    else:
        raise ValueError("PostEvent has neither create nor delete")
    return msg


def to_record(p: ev.Post) -> PostRecord:
    return PostRecord(
        post_id=p.post_id,
        author_id=p.author_id,
        created_at=p.created_at,
        in_reply_to_post_id=p.in_reply_to_post_id,
        in_reply_to_user_id=p.in_reply_to_user_id,
        is_retweet=p.is_retweet,
        is_reply=p.is_reply,
        source_post_id=p.source_post_id,
        source_user_id=p.source_user_id,
        has_video=p.has_video,
        conversation_id=p.conversation_id,
    )


def post_tuple(p: ev.Post) -> tuple[int, ...]:
    """A create as the store's insert tuple (POST_TUPLE_FIELDS), with the feeder-side rules the
    reference applies before a post reaches the store: a video counts only if it lasts at least
    5 s (a post that says it has video without a duration is trusted), and a missing creation time
    is read from the snowflake id."""
    has_video = p.has_video
    if has_video and 0 < p.video_duration_ms < MIN_VIDEO_DURATION_MS:
        has_video = False
    created = p.created_at
    if created <= 0:
        created = created_at_secs(p.post_id)
    return (
        p.post_id,
        p.author_id,
        created,
        p.in_reply_to_post_id,
        p.in_reply_to_user_id,
        p.source_post_id,
        p.source_user_id,
        p.conversation_id,
        p.is_retweet,
        p.is_reply,
        has_video,
    )


class PostEventApplier:
    """The `apply` callback of Thunder's BatchConsumer."""

    def __init__(self, store: PostStore) -> None:
        self.store = store

    def __call__(self, batch: list[Decoded[ev.PostEvent]]) -> None:
        creates, deletes = [], []
        for d in batch:
            e = d.value
            if e.HasField("create"):
                creates.append(post_tuple(e.create))
            else:
                deletes.append((e.delete.post_id, e.delete.deleted_at_ms // 1000))
        if creates:
            self.store.insert_tuples(creates)
            metrics.INGESTED.labels("create").inc(len(creates))
        if deletes:
            self.store.delete(deletes)
            metrics.INGESTED.labels("delete").inc(len(deletes))
