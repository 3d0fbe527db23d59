"""The final cut of a query: the newest candidates, in a deterministic order."""

from __future__ import annotations

import numpy as np

from thunder.store.columns import Arrays
from thunder.store.query_result import QueryResult
from thunder.store.vector_ops import take


def newest_first(a: Arrays, rows: np.ndarray, created: np.ndarray, limit: int) -> QueryResult:
    """The `limit` newest rows, by created_at descending, ties by post id descending (deterministic
    across restarts). A partition keeps only the candidates that can make the cut; their records
    are gathered once (one cache line each) for the tie-break and the result; then one argsort of
    a composite key: seconds since the oldest candidate, then the id's rank."""
    rows = rows[:0] if limit <= 0 else rows
    if len(rows) > limit:
        kth = np.partition(created, len(rows) - limit)[len(rows) - limit]
        keep = created >= kth  # ties at the boundary all stay, so the tie-break below decides
        rows, created = rows[keep], created[keep]
    rec = take(a.rec, rows)
    if len(rows) > 1:
        created = created.astype(np.int64)
        rank = np.empty(len(rows), np.int64)
        rank[np.argsort(rec["post_id"])] = np.arange(len(rows))
        order = np.argsort(-((created - created.min()) * len(rows) + rank))[:limit]
        rows, rec = rows[order], take(rec, order)
    return QueryResult.of(rows, rec, a.flags[rows])
