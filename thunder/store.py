"""In-memory post store: columnar numpy arrays (one row per post, ~90 bytes incl. the id index)
plus three per-author recency lists (originals, replies + reposts, videos) of row numbers, oldest
first. Queries gather the tail of each followed author's list and apply every rule vectorised.

Writers (ingest, trim) hold a lock; readers take none: columns only grow (a reader snapshots them
after collecting rows) and a row is recycled only after trim has removed it from every list."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from thunder.config import StoreConfig

# flag bits
IS_RETWEET, IS_REPLY, HAS_VIDEO, ALIVE = 1, 2, 4, 8
_INT_COLS = (
    "post_id",
    "author_id",
    "created_at",
    "in_reply_to_post_id",
    "in_reply_to_user_id",
    "source_post_id",
    "source_user_id",
    "conversation_id",
)


@dataclass(slots=True)
class PostRecord:
    """A post as stored (the reference LightPost; 0 means absent for optional ids)."""

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


@dataclass(slots=True)
class QueryResult:
    """Columns of the matching posts, newest first."""

    rows: np.ndarray
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def post_ids(self) -> list[int]:
        return self.columns["post_id"].tolist()

    def records(self) -> list[PostRecord]:
        c = self.columns
        flags = c["flags"]
        return [
            PostRecord(
                int(c["post_id"][i]),
                int(c["author_id"][i]),
                int(c["created_at"][i]),
                int(c["in_reply_to_post_id"][i]),
                int(c["in_reply_to_user_id"][i]),
                bool(flags[i] & IS_RETWEET),
                bool(flags[i] & IS_REPLY),
                int(c["source_post_id"][i]),
                int(c["source_user_id"][i]),
                bool(flags[i] & HAS_VIDEO),
                int(c["conversation_id"][i]),
            )
            for i in range(len(self.rows))
        ]


class PostStore:
    def __init__(self, config: StoreConfig | None = None, capacity: int = 1024) -> None:
        self.config = config or StoreConfig()
        self._cols: dict[str, np.ndarray] = {c: np.zeros(capacity, np.int64) for c in _INT_COLS}
        self._cols["flags"] = np.zeros(capacity, np.uint8)
        self._n = 0  # high-water row count
        self._free: list[int] = []
        self._row_of: dict[int, int] = {}  # post_id -> row (live or deleted-but-listed)
        self.originals: dict[int, list[int]] = {}
        self.secondary: dict[int, list[int]] = {}
        self.videos: dict[int, list[int]] = {}
        self.deleted: dict[int, int] = {}  # tombstones: post_id -> deleted_at (s)
        self._evicted: list[int] = []
        self._lock = threading.Lock()

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def num_posts(self) -> int:
        return len(self._row_of)

    @property
    def num_authors(self) -> int:
        return len(self.originals.keys() | self.secondary.keys())

    @property
    def num_tombstones(self) -> int:
        return len(self.deleted)

    def bytes_estimate(self) -> int:
        """Column arrays + id index (~100 B/entry in CPython) + list slots (8 B + boxed int)."""
        cols = sum(a.nbytes for a in self._cols.values())
        listed = sum(len(v) for m in (self.originals, self.secondary, self.videos) for v in m.values())
        return cols + 100 * len(self._row_of) + 40 * listed + 100 * len(self.deleted)

    # ---- writes ------------------------------------------------------------------------------
    def _alloc(self) -> int:
        if self._free:
            return self._free.pop()
        if self._n == len(self._cols["flags"]):
            self._cols = {k: np.concatenate([v, np.zeros_like(v)]) for k, v in self._cols.items()}
        self._n += 1
        return self._n - 1

    def insert(self, posts: Iterable[PostRecord], now_s: int | None = None) -> int:
        """Insert creates (reference `insert_posts`). Returns how many were added."""
        now_s = int(time.time()) if now_s is None else now_s
        oldest = now_s - self.config.retention_s
        batch = sorted((p for p in posts if oldest <= p.created_at <= now_s), key=lambda p: p.created_at)
        added = 0
        with self._lock:
            c = self._cols
            for p in batch:
                if p.post_id in self.deleted or p.post_id in self._row_of:
                    continue  # tombstoned ids never come back; first writer wins
                row = self._alloc()
                c = self._cols
                is_reply = p.is_reply or p.in_reply_to_post_id != 0 or p.in_reply_to_user_id != 0
                flags = ALIVE | (IS_RETWEET if p.is_retweet else 0) | (IS_REPLY if is_reply else 0)
                flags |= HAS_VIDEO if p.has_video else 0
                c["post_id"][row] = p.post_id
                c["author_id"][row] = p.author_id
                c["created_at"][row] = p.created_at
                c["in_reply_to_post_id"][row] = p.in_reply_to_post_id
                c["in_reply_to_user_id"][row] = p.in_reply_to_user_id
                c["source_post_id"][row] = p.source_post_id
                c["source_user_id"][row] = p.source_user_id
                c["conversation_id"][row] = p.conversation_id
                c["flags"][row] = flags
                self._row_of[p.post_id] = row
                target = self.secondary if (is_reply or p.is_retweet) else self.originals
                self._append(target, p.author_id, row)
                if self._video_eligible(p, is_reply):
                    self._append(self.videos, p.author_id, row)
                added += 1
        return added

    def _video_eligible(self, p: PostRecord, is_reply: bool) -> bool:
        if is_reply:
            return False
        if p.has_video:
            return True
        if p.is_retweet and p.source_post_id:
            src = self._row_of.get(p.source_post_id)
            if src is not None:
                f = self._cols["flags"][src]
                return bool(f & ALIVE) and not (f & IS_REPLY) and bool(f & HAS_VIDEO)
        return False

    def _append(self, lists: dict[int, list[int]], author: int, row: int) -> None:
        lst = lists.setdefault(author, [])
        while len(lst) >= self.config.max_posting_list_size:
            old = lst.pop(0)  # over the cap: the oldest leaves the store (reference Aug+ behaviour)
            if lists is not self.videos:
                self._kill(old)
                self._evicted.append(old)  # recycled by the next trim, once no list holds it
        lst.append(row)

    def _kill(self, row: int) -> None:
        flags = self._cols["flags"]
        if flags[row] & ALIVE:
            flags[row] &= ~np.uint8(ALIVE)
            self._row_of.pop(int(self._cols["post_id"][row]), None)

    def delete(self, deletes: Iterable[tuple[int, int]]) -> int:
        """Mark (post_id, deleted_at_s) deleted: the post disappears and its id is tombstoned."""
        n = 0
        with self._lock:
            for post_id, deleted_at in deletes:
                row = self._row_of.get(post_id)
                if row is not None:
                    self._kill(row)
                if post_id not in self.deleted:
                    self.deleted[post_id] = deleted_at
                    n += 1
        return n

    def trim(self, now_s: int | None = None, chunk: int = 5000) -> int:
        """Drop expired posts, deleted posts' list entries and expired tombstones; recycle their rows.
        Works in chunks of authors, taking the lock once per chunk, so queries and ingest are never
        stalled for long. Returns the number of rows recycled."""
        now_s = int(time.time()) if now_s is None else now_s
        cutoff = now_s - self.config.retention_s
        with self._lock:
            evicted, self._evicted = self._evicted, []  # dead before any list below is filtered
        released: list[int] = []
        for lists in (self.originals, self.secondary, self.videos):
            authors = list(lists.keys())
            for i in range(0, len(authors), chunk):
                with self._lock:
                    created, flags = self._cols["created_at"], self._cols["flags"]
                    for a in authors[i : i + chunk]:
                        lst = lists.get(a)
                        if not lst:
                            lists.pop(a, None)
                            continue
                        arr = np.asarray(lst)
                        keep = (created[arr] >= cutoff) & (flags[arr] & ALIVE).astype(bool)
                        if keep.all():
                            continue
                        if lists is not self.videos:  # every row sits in exactly one of these two
                            released.extend(arr[~keep].tolist())
                        kept = arr[keep].tolist()
                        if kept:
                            lists[a] = kept
                        else:
                            del lists[a]
        with self._lock:
            for row in released:
                self._kill(row)
            self._free.extend(released)
            self._free.extend(evicted)
            self.deleted = {pid: t for pid, t in self.deleted.items() if t >= cutoff}
        return len(released) + len(evicted)

    # ---- reads -------------------------------------------------------------------------------
    def get(self, post_id: int) -> PostRecord | None:
        row = self._row_of.get(post_id)
        if row is None:
            return None
        res = self._gather(np.array([row], np.int64))
        return res.records()[0]

    def _gather(self, rows: np.ndarray) -> QueryResult:
        return QueryResult(rows, {k: v[rows] for k, v in self._cols.items()})

    def _collect(
        self, lists: dict[int, list[int]], authors: Sequence[int], tail: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows of each author's newest `tail` entries (oldest first within an author) and the
        segment number of each row. The hot loop is a list comprehension: no per-post Python work."""
        get = lists.get
        parts = [lst[-tail:] for lst in map(get, authors) if lst]
        if not parts:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        lens = np.fromiter(map(len, parts), np.int64, count=len(parts))
        flat = np.fromiter(chain.from_iterable(parts), np.int64, count=int(lens.sum()))
        return flat, np.repeat(np.arange(len(parts), dtype=np.int64), lens)

    def query_map(
        self,
        lists: dict[int, list[int]],
        authors: Sequence[int],
        max_per_author: int,
        exclude: np.ndarray,
        viewer_id: int,
        following: np.ndarray | None,
        now_s: int,
    ) -> np.ndarray:
        """Reference `get_posts_from_map`: rows that pass every rule, newest `max_per_author` per author."""
        if max_per_author <= 0:
            return np.empty(0, np.int64)
        scan = self.config.max_scan_per_author
        rows, seg = self._collect(lists, authors, scan + len(exclude))
        if not len(rows):
            return rows
        c = self._cols  # snapshot after collecting: columns only grow
        if len(exclude):
            keep = ~np.isin(c["post_id"][rows], exclude)
            rows, seg = rows[keep], seg[keep]
        in_scan = _rank_from_newest(seg) < scan  # the scan limit counts entries after exclusion
        rows, seg = rows[in_scan], seg[in_scan]
        flags = c["flags"][rows]
        ok = (flags & ALIVE).astype(bool) & (c["created_at"][rows] >= now_s - self.config.retention_s)
        ok &= ~((flags & IS_RETWEET).astype(bool) & (c["source_user_id"][rows] == viewer_id))
        if following is not None:
            ok &= self._reply_ok(rows, flags, following)
        rows, seg = rows[ok], seg[ok]
        return rows[_rank_from_newest(seg) < max_per_author]

    def _reply_ok(self, rows: np.ndarray, flags: np.ndarray, following: np.ndarray) -> np.ndarray:
        """A reply passes iff its parent is stored and is an original, or the parent replied to the
        conversation root and the reply answers an account the viewer follows."""
        ok = np.ones(len(rows), bool)
        replies = np.flatnonzero(flags & IS_REPLY)
        if not len(replies):
            return ok
        c = self._cols
        parent_ids = c["in_reply_to_post_id"][rows[replies]]
        row_of = self._row_of
        prow = np.array([row_of.get(p, -1) for p in parent_ids.tolist()], np.int64)
        has_parent = prow >= 0
        prow_safe = np.where(has_parent, prow, 0)
        pflags = c["flags"][prow_safe]
        parent_alive = has_parent & (pflags & ALIVE).astype(bool)
        parent_original = (pflags & (IS_REPLY | IS_RETWEET)) == 0
        conv = c["conversation_id"][rows[replies]]
        to_root = (conv != 0) & (c["in_reply_to_post_id"][prow_safe] == conv)
        followed = np.isin(c["in_reply_to_user_id"][rows[replies]], following)
        ok[replies] = parent_alive & (parent_original | (to_root & followed))
        return ok

    def get_posts(
        self,
        viewer_id: int,
        following: Sequence[int],
        exclude: Sequence[int] = (),
        max_results: int = 1200,
        is_video: bool = False,
        now_s: int | None = None,
        max_originals: int | None = None,
        max_replies: int | None = None,
    ) -> QueryResult:
        """Originals (cap 50) then replies/reposts (cap 30) — or videos (cap 100) — of the followed
        authors; sorted newest first and cut to `max_results`."""
        now_s = int(time.time()) if now_s is None else now_s
        cfg = self.config
        excl = np.asarray(exclude, np.int64)
        if is_video:
            rows = self.query_map(
                self.videos, following, cfg.max_videos_per_author, excl, viewer_id, None, now_s
            )
        else:
            cap_o = (
                cfg.max_originals_per_author
                if max_originals is None
                else min(max_originals, cfg.max_originals_per_author)
            )
            cap_r = (
                cfg.max_replies_per_author
                if max_replies is None
                else min(max_replies, cfg.max_replies_per_author)
            )
            follow_arr = np.asarray(following, np.int64)
            rows = np.concatenate(
                [
                    self.query_map(self.originals, following, cap_o, excl, viewer_id, None, now_s),
                    self.query_map(self.secondary, following, cap_r, excl, viewer_id, follow_arr, now_s),
                ]
            )
        c = self._cols
        # newest first; ties broken by id so the order is deterministic across restarts
        order = np.lexsort((-c["post_id"][rows], -c["created_at"][rows]))[:max_results]
        return self._gather(rows[order])


def _rank_from_newest(seg: np.ndarray) -> np.ndarray:
    """Within each run of equal segment ids (entries oldest first), 0 for the newest entry, 1 for the
    next older, and so on."""
    if not len(seg):
        return seg
    ends = np.flatnonzero(np.r_[seg[1:] != seg[:-1], True])
    lengths = np.diff(np.r_[-1, ends])
    run_end = np.repeat(ends, lengths)
    return run_end - np.arange(len(seg))
