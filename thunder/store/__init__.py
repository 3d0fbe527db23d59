"""In-memory post store, compact: one numpy record per post plus a 1-byte flags column, a numpy
hash from post id to record, and the three per-author recency lists (originals, replies + reposts,
videos) as an immutable CSR snapshot plus a small delta of recent entries. Each snapshot entry
carries the hot facts of its post (created_at, kind, the reposted or replied-to user, the reply's
parent row), so a query filters candidates from arrays that are contiguous per author and touches
the records only for liveness (flags column) and the results. See docs/thunder.md.

Modules: `records` (record layout, flag bits, `PostRecord`), `columns` (the row arrays),
`id_index` (post id -> row), `int_hash` (author id -> snapshot slot), `entries` (list entries and
their derived facts), `delta` (unfolded recent entries), `snapshot` (the frozen lists), `rules`
(which entries a query may return), `newest` (the final cut), `query_result`, `post_store`."""

from thunder.store.delta import Delta
from thunder.store.entries import PARENT_ORIGINAL, PARENT_TO_ROOT, RETWEET_REPLY
from thunder.store.post_store import PostStore
from thunder.store.query_result import QueryResult
from thunder.store.records import (
    ALIVE,
    HAS_VIDEO,
    IS_REPLY,
    IS_RETWEET,
    POST_TUPLE_FIELDS,
    PostLike,
    PostRecord,
)

__all__ = [
    "ALIVE",
    "HAS_VIDEO",
    "IS_REPLY",
    "IS_RETWEET",
    "PARENT_ORIGINAL",
    "PARENT_TO_ROOT",
    "POST_TUPLE_FIELDS",
    "RETWEET_REPLY",
    "Delta",
    "PostLike",
    "PostRecord",
    "PostStore",
    "QueryResult",
]
