"""`posts` topic -> PostStore. Creates are applied before deletes within a batch (the reference
ingests a batch's creates, then marks its deletes), so a create and its delete in the same batch
leave a tombstone and no post."""

from __future__ import annotations

from foryou.kafka import Decoded
from protos import events_pb2 as ev
from thunder import metrics
from thunder.store import PostRecord, PostStore


def decode_post_event(value: bytes) -> ev.PostEvent:
    msg = ev.PostEvent.FromString(value)
    kind = msg.WhichOneof("event")
    if kind is None:
        raise ValueError("PostEvent has neither create nor delete")
    if kind == "create" and (msg.create.post_id <= 0 or msg.create.author_id <= 0):
        raise ValueError("create without post_id/author_id")
    if kind == "delete" and msg.delete.post_id <= 0:
        raise ValueError("delete without post_id")
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


class PostEventApplier:
    """The `apply` callback of Thunder's BatchConsumer."""

    def __init__(self, store: PostStore) -> None:
        self.store = store

    def __call__(self, batch: list[Decoded[ev.PostEvent]]) -> None:
        creates = [d.value.create for d in batch if d.value.HasField("create")]
        deletes = [
            (d.value.delete.post_id, d.value.delete.deleted_at_ms // 1000)
            for d in batch
            if d.value.HasField("delete")
        ]
        if creates:
            self.store.insert(creates)
            metrics.INGESTED.labels("create").inc(len(creates))
        if deletes:
            self.store.delete(deletes)
            metrics.INGESTED.labels("delete").inc(len(deletes))
