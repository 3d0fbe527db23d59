"""`posts` topic -> PostStore. Creates are applied before deletes within a batch (the reference
ingests a batch's creates, then marks its deletes), so a create and its delete in the same batch
leave a tombstone and no post.

The consumer hands each batch's raw values to `decode_post_events`: plain creates are decoded
for the whole batch in numpy (thunder/wire_decoder.py), everything else with upb per message;
then validation (`foryou.core.events`, the rule every consumer of `posts` applies) and the feeder
rules run vectorised over the batch's columns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np

from foryou.core.events import POST_CHECK_REASONS, InvalidEvent, check_post_columns, validate_post_event
from foryou.core.kafka import Decoded
from foryou.core.snowflake import timestamps_ms
from protos import events_pb2 as ev
from thunder import metrics
from thunder.config import MIN_VIDEO_DURATION_MS
from thunder.store import POST_TUPLE_FIELDS, PostRecord, PostStore
from thunder.store.records import INT_FIELDS
from thunder.wire_decoder import N_COLUMNS, decode_create_columns


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


# the store's insert columns, then the video duration the feeder rule needs (the columns of
# `decode_create_columns`)
_CREATE_FIELDS = attrgetter(*POST_TUPLE_FIELDS, "video_duration_ms")
_N_COLS = len(POST_TUPLE_FIELDS)
_REFS = slice(3, len(INT_FIELDS))  # the REF_ID_FIELDS columns (INT_FIELDS[3:], 0 = unset)


@dataclass(slots=True)
class PostEventBatch:
    """A batch of post events as the store takes them."""

    creates: np.ndarray = field(default_factory=lambda: np.empty((0, _N_COLS), np.int64))
    deletes: list[tuple[int, int]] = field(default_factory=list)  # (post_id, deleted_at_s)


def decode_post_events(
    values: list[bytes | None], vectorised: bool = True
) -> tuple[PostEventBatch, list[tuple[int, str]]]:
    """The BatchConsumer batch decoder: raw values -> (batch, [(index, reason) of malformed]).
    Plain creates are decoded for the whole batch at once (`decode_create_columns`); the rest
    (deletes, unusual or malformed messages) one by one with upb. `vectorised=False` sends every
    message through upb (the reference the vectorised path is tested against)."""
    n = len(values)
    if vectorised:  # a None value (no payload) is left to upb, which rejects it
        raw = [b"" if v is None else v for v in values] if None in values else values
        cols, is_create = decode_create_columns(raw)  # type: ignore[arg-type]
    else:
        cols, is_create = np.zeros((n, N_COLUMNS), np.int64), np.zeros(n, bool)
    parse = ev.PostEvent.FromString
    deletes: list[tuple[int, int]] = []
    bad: list[tuple[int, str]] = []
    for i in np.flatnonzero(~is_create).tolist():
        try:
            e = parse(values[i])  # type: ignore[arg-type]
        except Exception as ex:  # DecodeError, or a None value (TypeError)
            bad.append((i, f"{type(ex).__name__}: {ex}"))
            continue
        if e.WhichOneof("event") == "create":  # validated with the batch's columns below
            cols[i] = _CREATE_FIELDS(e.create)
            is_create[i] = True
            continue
        try:
            d = validate_post_event(e).delete  # a delete, or InvalidEvent (neither kind)
        except InvalidEvent as ex:
            bad.append((i, f"invalid: {ex}"))
            continue
        deletes.append((d.post_id, d.deleted_at_ms // 1000))
    create_at = np.flatnonzero(is_create)
    a = cols[create_at]
    # the store keeps no quoted ids (the wire decoder skips them), so they are not checked here
    codes = check_post_columns(
        a[:, 0], a[:, 1], list(a[:, _REFS].T), video_duration_ms=a[:, _N_COLS], created_at=a[:, 2]
    )
    if codes.any():
        bad += [(int(create_at[j]), POST_CHECK_REASONS[int(codes[j])]) for j in np.flatnonzero(codes)]
        a = a[codes == 0]
    return PostEventBatch(feeder_rules(a), deletes), bad


def events_to_batch(events: Iterable[ev.PostEvent]) -> tuple[PostEventBatch, list[tuple[int, str]]]:
    """Already parsed events -> (batch, [(index, reason) of invalid ones])."""
    return decode_post_events([e.SerializeToString() for e in events])


def feeder_rules(a: np.ndarray) -> np.ndarray:
    """The feeder-side rules the reference applies before a post reaches the store, on an int64
    (n, POST_TUPLE_FIELDS + video_duration_ms) array: a video counts only if it lasts at least 5 s
    (a post that says it has video without a duration is trusted), and a missing creation time is
    read from the snowflake id. Returns the store's insert columns."""
    dur = a[:, _N_COLS]
    short = (dur > 0) & (dur < MIN_VIDEO_DURATION_MS)
    if short.any():
        a[short, _N_COLS - 1] = 0  # has_video
    untimed = a[:, 2] <= 0
    if untimed.any():
        a[untimed, 2] = timestamps_ms(a[untimed, 0]) // 1000
    return a[:, :_N_COLS]


class PostEventApplier:
    """The `apply` callback of Thunder's BatchConsumer: takes a decoded PostEventBatch (or, for
    per-message consumers and tests, a list of `Decoded` PostEvents)."""

    def __init__(self, store: PostStore) -> None:
        self.store = store

    def __call__(self, batch: PostEventBatch | list[Decoded[ev.PostEvent]]) -> None:
        if not isinstance(batch, PostEventBatch):
            batch, _ = events_to_batch(d.value for d in batch)
        if len(batch.creates):
            self.store.insert_tuples(batch.creates)
            metrics.INGESTED.labels("create").inc(len(batch.creates))
        if batch.deletes:
            self.store.delete(batch.deletes)
            metrics.INGESTED.labels("delete").inc(len(batch.deletes))
