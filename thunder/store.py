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
from typing import Protocol
from itertools import chain

import numpy as np

from thunder.config import StoreConfig

# flag bits
IS_RETWEET, IS_REPLY, HAS_VIDEO, ALIVE = 1, 2, 4, 8
# One record per post (row-major): a query touching a row's fields costs one cache miss, not one per
# column. `parent_row` is the row of in_reply_to_post_id resolved at insert (-1 = unknown).
_RECORD = np.dtype(
    [
        (name, np.int64)
        for name in (
            "post_id",
            "author_id",
            "created_at",
            "in_reply_to_post_id",
            "in_reply_to_user_id",
            "source_post_id",
            "source_user_id",
            "conversation_id",
            "parent_row",
        )
    ]
    + [("flags", np.uint8)]
)


def _new_records(n: int) -> np.ndarray:
    rec = np.zeros(n, _RECORD)
    rec["parent_row"] = -1
    return rec


def _columns(rec: np.ndarray) -> dict[str, np.ndarray]:
    return {name: rec[name] for name in _RECORD.names}


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


class PostLike(Protocol):
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
        self._rec = _new_records(capacity)
        self._cols = _columns(self._rec)
        self._n = 0  # high-water row count
        self._free: list[int] = []
        self._row_of: dict[int, int] = {}  # post_id -> row (live or deleted-but-listed)
        self.originals: dict[int, list[int]] = {}
        self.secondary: dict[int, list[int]] = {}
        self.videos: dict[int, list[int]] = {}
        self.deleted: dict[int, int] = {}  # tombstones: post_id -> deleted_at (s)
        self._evicted: list[int] = []
        self._maps = {"o": self.originals, "s": self.secondary, "v": self.videos}
        # read path: an immutable CSR snapshot of every list + the entries appended since it was built
        self._snap: dict[str, _Csr] = {k: _Csr.empty() for k in self._maps}
        self._delta: dict[str, dict[int, list[int]]] = {k: {} for k in self._maps}
        self.delta_size = 0
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
        cols = self._rec.nbytes
        listed = sum(len(v) for m in (self.originals, self.secondary, self.videos) for v in m.values())
        return cols + 100 * len(self._row_of) + 40 * listed + 100 * len(self.deleted)

    # ---- writes ------------------------------------------------------------------------------
    def _alloc(self) -> int:
        if self._free:
            return self._free.pop()
        if self._n == len(self._cols["flags"]):
            grown = _new_records(2 * self._n)
            grown[: self._n] = self._rec[: self._n]
            self._rec, self._cols = grown, _columns(grown)
        self._n += 1
        return self._n - 1

    def insert(self, posts: Iterable[PostLike], now_s: int | None = None) -> int:
        """Insert creates (reference `insert_posts`). Returns how many were added. Takes PostRecords
        or protobuf `Post`s directly (same field names; unset optional ids read as 0)."""
        now_s = int(time.time()) if now_s is None else now_s
        oldest = now_s - self.config.retention_s
        batch = sorted((p for p in posts if oldest <= p.created_at <= now_s), key=lambda p: p.created_at)
        added = 0
        row_of, deleted = self._row_of, self.deleted
        with self._lock:
            for p in batch:
                pid = p.post_id
                if pid in deleted or pid in row_of:
                    continue  # tombstoned ids never come back; first writer wins
                row = self._alloc()
                is_reply = p.is_reply or p.in_reply_to_post_id != 0 or p.in_reply_to_user_id != 0
                flags = ALIVE | (IS_RETWEET if p.is_retweet else 0) | (IS_REPLY if is_reply else 0)
                flags |= HAS_VIDEO if p.has_video else 0
                parent = row_of.get(p.in_reply_to_post_id, -1) if is_reply else -1
                self._rec[row] = (pid, p.author_id, p.created_at, p.in_reply_to_post_id, p.in_reply_to_user_id,
                                  p.source_post_id, p.source_user_id, p.conversation_id, parent, flags)
                row_of[pid] = row
                self._append("s" if (is_reply or p.is_retweet) else "o", p.author_id, row)
                if self._video_eligible(p, is_reply):
                    self._append("v", p.author_id, row)
                added += 1
        return added

    def _video_eligible(self, p: PostLike, is_reply: bool) -> bool:
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

    def _append(self, name: str, author: int, row: int) -> None:
        lst = self._maps[name].setdefault(author, [])
        while len(lst) >= self.config.max_posting_list_size:
            old = lst.pop(0)  # over the cap: the oldest leaves the store (reference Aug+ behaviour)
            if name != "v":
                self._kill(old)
                self._evicted.append(old)  # recycled by the next trim, once no list holds it
        lst.append(row)
        self._delta[name].setdefault(author, []).append(row)
        self.delta_size += 1

    def rebuild_snapshot(self) -> None:
        """Fold the lists into fresh CSR snapshots (called periodically and by trim)."""
        with self._lock:
            self._snap = {k: _Csr.build(m) for k, m in self._maps.items()}
            self._delta = {k: {} for k in self._maps}
            self.delta_size = 0

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
        # no snapshot may reference a row once it is recycled
        self.rebuild_snapshot()
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
        self, name: str, authors: Sequence[int], author_arr: np.ndarray, tail: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows of each followed author's newest `tail` entries (oldest first within an author) and
        the author's position in the request as segment id. Snapshot part fully vectorised; only
        entries newer than the snapshot need a dict lookup."""
        snap, delta = self._snap[name], self._delta[name]
        rows, seg = snap.tails(author_arr, tail)
        if delta:
            get = delta.get
            hits = [(i, d) for i, d in enumerate(map(get, authors)) if d]
            if hits:
                lens = np.fromiter((len(d) for _, d in hits), np.int64, count=len(hits))
                drows = np.fromiter(chain.from_iterable(d for _, d in hits), np.int64, count=int(lens.sum()))
                dseg = np.repeat(np.fromiter((i for i, _ in hits), np.int64, count=len(hits)), lens)
                rows, seg = np.concatenate([rows, drows]), np.concatenate([seg, dseg])
                order = np.argsort(seg, kind="stable")  # per author: snapshot part, then newer entries
                rows, seg = rows[order], seg[order]
        return rows, seg

    def query_map(
        self,
        name: str,
        authors: Sequence[int],
        author_arr: np.ndarray,
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
        rows, seg = self._collect(name, authors, author_arr, scan + len(exclude))
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
        ok &= c["author_id"][rows] == author_arr[seg]  # guards against a row recycled under a reader
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
        # the parent's row was resolved at insert; look up only replies that arrived before their parent
        prow = c["parent_row"][rows[replies]]
        stale = (prow < 0) | (c["post_id"][np.maximum(prow, 0)] != parent_ids)
        if stale.any():
            row_of = self._row_of
            prow = prow.copy()
            prow[stale] = [row_of.get(p, -1) for p in parent_ids[stale].tolist()]
        has_parent = prow >= 0
        prow_safe = np.where(has_parent, prow, 0)
        pflags = c["flags"][prow_safe]
        parent_alive = has_parent & (pflags & ALIVE).astype(bool)
        parent_original = (pflags & (IS_REPLY | IS_RETWEET)) == 0
        conv = c["conversation_id"][rows[replies]]
        to_root = (conv != 0) & (c["in_reply_to_post_id"][prow_safe] == conv)
        followed = _member_sorted(c["in_reply_to_user_id"][rows[replies]], following)
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
        # sorted authors make the snapshot's searchsorted cache-friendly; order within the request
        # does not matter (results are sorted by time)
        follow_arr = np.sort(np.asarray(following, np.int64))
        follow_arr = (
            follow_arr[np.r_[True, follow_arr[1:] != follow_arr[:-1]]] if len(follow_arr) else follow_arr
        )
        following = follow_arr.tolist() if self.delta_size else following
        if is_video:
            rows = self.query_map(
                "v", following, follow_arr, cfg.max_videos_per_author, excl, viewer_id, None, now_s
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
            rows = np.concatenate(
                [
                    self.query_map("o", following, follow_arr, cap_o, excl, viewer_id, None, now_s),
                    self.query_map("s", following, follow_arr, cap_r, excl, viewer_id, follow_arr, now_s),
                ]
            )
        c = self._cols
        # newest first; ties broken by id so the order is deterministic across restarts
        order = np.lexsort((-c["post_id"][rows], -c["created_at"][rows]))[:max_results]
        return self._gather(rows[order])


def _member_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """np.isin for a sorted, de-duplicated set (a binary search instead of a hash build)."""
    if not len(sorted_set):
        return np.zeros(len(values), bool)
    idx = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[idx] == values


def _rank_from_newest(seg: np.ndarray) -> np.ndarray:
    """Within each run of equal segment ids (entries oldest first), 0 for the newest entry, 1 for the
    next older, and so on."""
    if not len(seg):
        return seg
    ends = np.flatnonzero(np.r_[seg[1:] != seg[:-1], True])
    lengths = np.diff(np.r_[-1, ends])
    run_end = np.repeat(ends, lengths)
    return run_end - np.arange(len(seg))


@dataclass(slots=True)
class _Csr:
    """Per-author lists as sorted author ids + offsets into one row array (immutable)."""

    authors: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray

    @classmethod
    def empty(cls) -> _Csr:
        return cls(np.empty(0, np.int64), np.zeros(1, np.int64), np.empty(0, np.int64))

    @classmethod
    def build(cls, lists: dict[int, list[int]]) -> _Csr:
        if not lists:
            return cls.empty()
        keys = np.fromiter(lists.keys(), np.int64, count=len(lists))
        lens = np.fromiter(map(len, lists.values()), np.int64, count=len(lists))
        flat = np.fromiter(chain.from_iterable(lists.values()), np.int64, count=int(lens.sum()))
        order = np.argsort(keys)
        starts = np.cumsum(lens) - lens
        new_lens = lens[order]
        new_starts = np.cumsum(new_lens) - new_lens
        idx = np.repeat(starts[order] - new_starts, new_lens) + np.arange(int(new_lens.sum()))
        return cls(keys[order], np.r_[0, np.cumsum(new_lens)], flat[idx])

    def tails(self, authors: np.ndarray, tail: int) -> tuple[np.ndarray, np.ndarray]:
        """Newest `tail` rows of each author present (oldest first) and the author's position."""
        if not len(self.authors) or not len(authors):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        idx = np.minimum(np.searchsorted(self.authors, authors), len(self.authors) - 1)
        pos = np.flatnonzero(self.authors[idx] == authors)
        idx = idx[pos]
        ends = self.offsets[idx + 1]
        starts = np.maximum(self.offsets[idx], ends - tail)
        lens = ends - starts
        flat = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
        return self.rows[flat], np.repeat(pos, lens)
