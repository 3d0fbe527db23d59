"""Which candidate entries a query may return."""

from __future__ import annotations

import numpy as np

from thunder.store.columns import Arrays
from thunder.store.entries import PARENT_ORIGINAL, PARENT_TO_ROOT, RETWEET_REPLY, hot_entries
from thunder.store.id_index import IdIndex
from thunder.store.records import ALIVE, IS_REPLY, IS_RETWEET
from thunder.store.vector_ops import member_sorted


def entries_pass(
    a: Arrays, row_of: IdIndex, ent: np.ndarray, following: np.ndarray, viewer_id: int, cutoff: int
) -> np.ndarray:
    """Which entries pass: alive, created at or after `cutoff`, not a repost of the viewer's own
    post, and for replies the reply rule (`replies_pass`)."""
    rows, kind = ent["row"], ent["kind"]
    ok = ((a.flags[rows] & ALIVE) != 0) & (ent["created"] >= cutoff)
    ok &= ~(((kind & IS_RETWEET) != 0) & (ent["aux"] == viewer_id))
    rep = np.flatnonzero(kind & IS_REPLY)
    if len(rep):
        ok[rep] &= replies_pass(a, row_of, rows[rep], kind[rep], ent["aux"][rep], ent["prow"][rep], following)
    return ok


def replies_pass(
    a: Arrays,
    row_of: IdIndex,
    rows: np.ndarray,
    kind: np.ndarray,
    aux: np.ndarray,
    prow: np.ndarray,
    following: np.ndarray,
) -> np.ndarray:
    """A reply passes iff its parent is stored and is an original, or the parent replied to the
    conversation root and the reply answers an account the viewer follows. An entry's parent
    facts hold while its parent row is alive; otherwise they are derived again (parent gone,
    or arrived after the reply)."""
    live = (prow >= 0) & ((a.flags[np.maximum(prow, 0)] & ALIVE) != 0)
    if not live.all():
        stale = np.flatnonzero(~live)
        h = hot_entries(a, row_of, rows[stale])
        kind[stale] = h["kind"]  # kind, prow are this query's copies
        live[stale] = h["prow"] >= 0
    ok = live & ((kind & PARENT_ORIGINAL) != 0)
    need = np.flatnonzero(live & ~ok & ((kind & PARENT_TO_ROOT) != 0))
    if len(need):
        users = aux[need]
        mixed = np.flatnonzero(kind[need] & RETWEET_REPLY)  # aux holds the reposted user
        if len(mixed):
            users[mixed] = a.cols["in_reply_to_user_id"][rows[need[mixed]]]
        ok[need] = member_sorted(users, following)
    return ok
