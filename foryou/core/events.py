"""Decoding and validation of the event topics' messages, shared by every consumer of `posts`
(Thunder, the retrieval index, the Redis ingester), and the retention every store of recent posts
keeps."""

from __future__ import annotations

from protos import events_pb2 as ev

# Recent posts live 48 h: Thunder's retention, the AgeFilter, the retrieval index, Redis post TTLs.
RETENTION_S = 48 * 3600
RETENTION_MS = RETENTION_S * 1000


def decode_post_event(value: bytes) -> ev.PostEvent:
    """Parse a `posts` message; ValueError (the consumer sets it aside) unless it is a create with
    positive post and author ids or a delete with a positive post id."""
    msg = ev.PostEvent.FromString(value)
    kind = msg.WhichOneof("event")
    if kind == "create":
        if msg.create.post_id <= 0 or msg.create.author_id <= 0:
            raise ValueError("post create needs positive post_id and author_id")
    elif kind == "delete":
        if msg.delete.post_id <= 0:
            raise ValueError("post delete needs a positive post_id")
    else:
        raise ValueError("PostEvent with neither create nor delete")
    return msg
