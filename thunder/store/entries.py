"""Per-author list entries: the row of a post plus the hot facts a query filters on, so a query
reads one author's entries from one or two cache lines and touches the records only for liveness
and the results."""

from __future__ import annotations

import numpy as np

from thunder.store.columns import Arrays
from thunder.store.id_index import IdIndex
from thunder.store.records import ALIVE, IS_REPLY, IS_RETWEET
from thunder.store.vector_ops import take

# extra bits of an entry's `kind` (its IS_RETWEET / IS_REPLY bits are the post's): facts about a
# reply's parent, valid while the parent row stays alive (see `Snapshot`)
PARENT_ORIGINAL, PARENT_TO_ROOT, RETWEET_REPLY = 16, 32, 64
# An entry (24 B, aligned): the post's row and the facts `hot_entries` derives. created_at as
# uint32 seconds (good until 2106; stored posts are recent).
ENTRY = np.dtype(
    {
        "names": ["row", "created", "prow", "kind", "aux"],
        "formats": [np.int32, np.uint32, np.int32, np.uint8, np.int64],
        "offsets": [0, 4, 8, 12, 16],
        "itemsize": 24,
    }
)
ENTRY_BYTES = f"V{ENTRY.itemsize}"


def concat_entries(ents: list[np.ndarray]) -> np.ndarray:
    """np.concatenate of ENTRY arrays, through raw bytes (a structured concatenate is slower)."""
    if len(ents) == 1:
        return ents[0]
    return np.concatenate([e.view(ENTRY_BYTES) for e in ents]).view(ENTRY)


def parent_rows(a: Arrays, row_of: IdIndex, cached: np.ndarray, parent_ids: np.ndarray) -> np.ndarray:
    """Live row of each parent id: the row resolved at insert when it is still alive and still
    holds that id, else a fresh lookup (the parent arrived later or its id moved); -1 = absent."""
    c = np.maximum(cached, 0)
    stale = (cached < 0) | ((a.flags[c] & ALIVE) == 0) | (a.cols["post_id"][c] != parent_ids)
    if stale.any():
        cached = cached.copy()
        cached[stale] = row_of.lookup(parent_ids[stale])
    return cached


def hot_entries(a: Arrays, row_of: IdIndex, rows: np.ndarray) -> np.ndarray:
    """Entry columns for `rows`: created_at; kind (IS_RETWEET / IS_REPLY, and for a reply
    whether its live parent is an original, whether the parent answers the conversation root,
    and whether the reply is also a repost); aux (the reposted user for reposts, else the
    replied-to user); prow (the reply's live parent row, -1 if absent)."""
    rec = take(a.rec, rows)
    f = a.flags[rows]
    out = np.zeros(len(rows), ENTRY)
    out["row"], out["created"], out["prow"] = rows, rec["created_at"], -1
    kind = f & np.uint8(IS_RETWEET | IS_REPLY)
    is_rt = (f & IS_RETWEET) != 0
    out["aux"] = np.where(is_rt, rec["source_user_id"], rec["in_reply_to_user_id"])
    rep = np.flatnonzero(f & IS_REPLY)
    if len(rep):
        rr = take(rec, rep)
        p = parent_rows(a, row_of, a.parent[rows[rep]], rr["in_reply_to_post_id"])
        pp = np.maximum(p, 0)
        found = p >= 0
        orig = found & ((a.flags[pp] & (IS_REPLY | IS_RETWEET)) == 0)
        conv = rr["conversation_id"]
        to_root = found & (conv != 0) & (a.cols["in_reply_to_post_id"][pp] == conv)
        extra = orig * PARENT_ORIGINAL + to_root * PARENT_TO_ROOT + is_rt[rep] * RETWEET_REPLY
        kind[rep] |= extra.astype(np.uint8)
        out["prow"][rep] = p
    out["kind"] = kind
    return out
