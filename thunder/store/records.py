"""The stored post: its 64-byte record layout, the flags column's bits, the tuple layout ingest
hands over, and the `PostRecord` view of one post."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# flag bits (flags column, one byte per row)
IS_RETWEET, IS_REPLY, HAS_VIDEO, ALIVE = 1, 2, 4, 8
# One record per post, 64 B and cache-line aligned: reading any of a row's fields costs one cache
# miss. The row of a reply's parent (resolved at insert, -1 = unknown) lives in its own column.
RECORD_FIELDS = (
    "post_id",
    "created_at",
    "in_reply_to_post_id",
    "conversation_id",
    "in_reply_to_user_id",
    "source_user_id",
    "author_id",
    "source_post_id",
)
RECORD = np.dtype([(name, np.int64) for name in RECORD_FIELDS])

# the tuple layout `PostStore.insert_tuples` takes: INT_FIELDS, then is_retweet, is_reply, has_video
POST_TUPLE_FIELDS = (
    "post_id",
    "author_id",
    "created_at",
    "in_reply_to_post_id",
    "in_reply_to_user_id",
    "source_post_id",
    "source_user_id",
    "conversation_id",
    "is_retweet",
    "is_reply",
    "has_video",
)
INT_FIELDS = POST_TUPLE_FIELDS[:8]
# the optional ids among them: the referenced post and user ids and the conversation (0 = absent)
REF_ID_FIELDS = INT_FIELDS[3:]


@dataclass(slots=True)
class PostRecord:
    """A post as stored (the wire `LightPost`'s fields; 0 means absent for optional ids)."""

    post_id: int
    author_id: int
    created_at: int  # seconds
    in_reply_to_post_id: int = 0
    in_reply_to_user_id: int = 0
    is_retweet: bool = False
    is_reply: bool = False
    source_post_id: int = 0
    source_user_id: int = 0
    has_video: bool = False
    conversation_id: int = 0


class PostLike(Protocol):
    """What `PostStore.insert` reads: a PostRecord or a protobuf `Post` (same field names)."""

    post_id: int
    author_id: int
    created_at: int
    in_reply_to_post_id: int
    in_reply_to_user_id: int
    is_retweet: bool
    is_reply: bool
    source_post_id: int
    source_user_id: int
    has_video: bool
    conversation_id: int
