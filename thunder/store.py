"""In-memory post store (reference Thunder `PostStore`), compact: one numpy record per post plus a
1-byte flags column, a numpy hash from post id to record, and the three per-author recency lists
(originals, replies + reposts, videos) as an immutable CSR snapshot plus a small delta of recent
entries. Each snapshot entry carries the hot facts of its post (created_at, kind, the reposted or
replied-to user, the reply's parent row), so a query filters candidates from arrays that are
contiguous per author and touches the records only for liveness (flags column) and the results.
See docs/thunder.md.

Writers (ingest, fold, trim) hold a lock; readers take none: they read the (snapshot, delta,
delta authors) tuple once, a record is written before it is listed, the record array only grows
(a reader reads it after collecting rows), and a row is reused only a full trim cycle after it
left every list."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Protocol

import numpy as np

from thunder.config import StoreConfig

# flag bits (flags column, one byte per row)
IS_RETWEET, IS_REPLY, HAS_VIDEO, ALIVE = 1, 2, 4, 8
# extra bits of a snapshot entry's `kind` (its IS_RETWEET / IS_REPLY bits are the post's): facts
# about a reply's parent, valid while the parent row stays alive (see `_Snapshot`)
PARENT_ORIGINAL, PARENT_TO_ROOT, RETWEET_REPLY = 16, 32, 64
# One record per post, 64 B and cache-line aligned: reading any of a row's fields costs one cache
# miss. The row of a reply's parent (resolved at insert, -1 = unknown) lives in its own column.
_RECORD = np.dtype(
    [
        ("post_id", np.int64),
        ("created_at", np.int64),
        ("in_reply_to_post_id", np.int64),
        ("conversation_id", np.int64),
        ("in_reply_to_user_id", np.int64),
        ("source_user_id", np.int64),
        ("author_id", np.int64),
        ("source_post_id", np.int64),
    ]
)
# A snapshot list entry (24 B, aligned): the post's row and the hot facts `PostStore._hot` derives,
# so a query reads one author's entries from one or two cache lines and filters them without
# touching the records. created_at as uint32 seconds (good until 2106; stored posts are recent).
_ENTRY = np.dtype(
    {
        "names": ["row", "created", "prow", "kind", "aux"],
        "formats": [np.int32, np.uint32, np.int32, np.uint8, np.int64],
        "offsets": [0, 4, 8, 12, 16],
        "itemsize": 24,
    }
)
_ENTRY_BYTES = f"V{_ENTRY.itemsize}"

# the tuple layout `insert_tuples` takes: _INT_FIELDS, then is_retweet, is_reply, has_video
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
_INT_FIELDS = POST_TUPLE_FIELDS[:8]


def _take(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """arr[idx] for a structured array, copying each element as raw bytes: numpy's structured
    gather goes field by field and is several times slower."""
    return arr.view(f"V{arr.itemsize}")[idx].view(arr.dtype)


@dataclass(slots=True)
class _Arrays:
    """Records, flags column and field views; replaced as one object when grown, so a reader that
    reads it once sees arrays of one generation."""

    rec: np.ndarray
    flags: np.ndarray
    parent: np.ndarray
    cols: dict[str, np.ndarray]  # record field views, and "parent_row"

    @classmethod
    def new(cls, n: int) -> _Arrays:
        buf = np.zeros(n * _RECORD.itemsize + 64, np.uint8)
        skip = -buf.ctypes.data % 64
        rec = buf[skip : skip + n * _RECORD.itemsize].view(_RECORD)
        parent = np.full(n, -1, np.int64)
        cols = {name: rec[name] for name in _RECORD.names}
        cols["parent_row"] = parent
        return cls(rec, np.zeros(n, np.uint8), parent, cols)

    def grown(self, n: int, used: int) -> _Arrays:
        new = _Arrays.new(n)
        new.rec[:used] = self.rec[:used]
        new.flags[:used] = self.flags[:used]
        new.parent[:used] = self.parent[:used]
        return new


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

    @classmethod
    def of(cls, rows: np.ndarray, rec: np.ndarray, flags: np.ndarray) -> QueryResult:
        """From the gathered records and flags of `rows`."""
        cols = {name: rec[name] for name in _RECORD.names}
        cols["flags"] = flags
        return cls(rows, cols)

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
        self._a = _Arrays.new(capacity)
        self._n = 0  # high-water row count
        self._free: list[int] = []
        self._row_of = _IdIndex(capacity)  # post_id -> row of the live post
        self.deleted: dict[int, int] = {}  # tombstones: post_id -> deleted_at (s)
        self._evicted: list[int] = []
        # rows released by a trim are reused only after the next trim (minutes later): a query still
        # reading an older snapshot can never see a row change owner under it
        self._quarantine: list[int] = []
        # the per-author lists = an immutable CSR snapshot + the entries appended since it was built
        # (small per-author Python lists) + the sorted ids of the authors those belong to (so a
        # query finds its few recent authors in one vectorised search), swapped together as one
        # tuple so readers need no lock
        self._read: tuple[_Snapshot, Delta, np.ndarray] = (_Snapshot.empty(), _new_delta(), _NO_IDS)
        self.delta_size = 0
        self._lock = threading.Lock()

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def num_posts(self) -> int:
        return len(self._row_of)

    @property
    def num_authors(self) -> int:
        """Authors with at least one original, reply or repost listed."""
        snap, delta, _ = self._read
        new = np.fromiter(delta["o"].keys() | delta["s"].keys(), np.int64)
        return snap.n_authors + int((snap.index.lookup(new) < 0).sum())

    @property
    def num_tombstones(self) -> int:
        return len(self.deleted)

    def bytes_estimate(self) -> int:
        """Records + flags + snapshot arrays + id index and tombstones (~100 B/entry as CPython
        dicts) + recent list entries (~40 B each as Python ints in lists)."""
        snap = self._read[0]
        return (
            self._a.rec.nbytes
            + self._a.flags.nbytes
            + self._a.parent.nbytes
            + snap.nbytes
            + self._row_of.nbytes
            + 100 * len(self.deleted)
            + 40 * self.delta_size
        )

    # ---- writes ------------------------------------------------------------------------------
    def _alloc(self, n: int) -> np.ndarray:
        """`n` free rows: recycled ones first, then fresh ones (the record array grows by doubling)."""
        k = min(n, len(self._free))
        reused = self._free[len(self._free) - k :]
        del self._free[len(self._free) - k :]
        need = self._n + n - k
        if need > len(self._a.rec):
            self._a = self._a.grown(max(need, 2 * len(self._a.rec)), self._n)
        fresh = np.arange(self._n, need, dtype=np.int64)
        self._n = need
        return np.concatenate([np.asarray(reused, np.int64), fresh]) if k else fresh

    def insert(self, posts: Iterable[PostLike], now_s: int | None = None) -> int:
        """Insert creates (reference `insert_posts`). Returns how many were added. Takes PostRecords
        or protobuf `Post`s directly (same field names; unset optional ids read as 0).

        One Python pass reads the fields; everything else is per batch and vectorised, with the
        reference's sequential semantics: the batch is ordered by created_at (stable), the first
        copy of an id wins, tombstoned or present ids are skipped."""
        vals = [
            (
                p.post_id,
                p.author_id,
                p.created_at,
                p.in_reply_to_post_id,
                p.in_reply_to_user_id,
                p.source_post_id,
                p.source_user_id,
                p.conversation_id,
                p.is_retweet,
                p.is_reply,
                p.has_video,
            )
            for p in posts
        ]
        return self.insert_tuples(vals, now_s)

    def insert_tuples(self, vals: Sequence[tuple[int, ...]] | np.ndarray, now_s: int | None = None) -> int:
        """`insert` for posts already read into tuples (or an int64 array of rows) in
        POST_TUPLE_FIELDS order: the ingest path builds them while decoding."""
        now_s = int(time.time()) if now_s is None else now_s
        oldest = max(0, now_s - self.config.retention_s)  # entries keep created_at as uint32
        if not len(vals):
            return 0
        a = np.asarray(vals, np.int64)
        a = a[(a[:, 2] >= oldest) & (a[:, 2] <= now_s)]  # drop expired and future posts
        a = a[np.argsort(a[:, 2], kind="stable")]
        _, first = np.unique(a[:, 0], return_index=True)
        if len(first) < len(a):
            a = a[np.sort(first)]
        with self._lock:
            row_of, deleted = self._row_of, self.deleted
            fresh = row_of.lookup(a[:, 0]) < 0
            if deleted:
                fresh &= np.fromiter((pid not in deleted for pid in a[:, 0].tolist()), bool, count=len(a))
            a = a[fresh]
            n = len(a)
            if not n:
                return 0
            rows = self._alloc(n)
            arrs = self._a
            c, flags = arrs.cols, arrs.flags
            is_rt = a[:, 8] != 0
            is_reply = (a[:, 9] != 0) | (a[:, 3] != 0) | (a[:, 4] != 0)  # reply ids force is_reply
            has_video = a[:, 10] != 0
            for k, name in enumerate(_INT_FIELDS):
                c[name][rows] = a[:, k]
            flags[rows] = (
                ALIVE | np.where(is_rt, IS_RETWEET, 0) | np.where(is_reply, IS_REPLY, 0)
            ) | np.where(has_video, HAS_VIDEO, 0)
            rows_l = rows.tolist()
            row_of.insert(a[:, 0], rows)
            prow = np.full(n, -1, np.int64)
            rep = np.flatnonzero(is_reply)
            if len(rep):
                prow[rep] = row_of.lookup(a[rep, 3])
            c["parent_row"][rows] = prow
            # video: own video, or a repost of a stored non-reply video post; replies never
            video = has_video & ~is_reply
            rt = np.flatnonzero(is_rt & ~is_reply & ~has_video & (a[:, 5] != 0))
            if len(rt):
                src = row_of.lookup(a[rt, 5])
                # a source from this same batch counts only if it comes earlier in the batch's
                # created_at order (the reference inserts one post after the other)
                by_row = np.argsort(rows)
                k = by_row[np.minimum(np.searchsorted(rows[by_row], src), n - 1)]
                src[(rows[k] == src) & (k >= rt)] = -1
                f = flags[np.maximum(src, 0)]
                video[rt] = (src >= 0) & ((f & (ALIVE | IS_REPLY | HAS_VIDEO)) == (ALIVE | HAS_VIDEO))
            self._append_many(a[:, 1], rows_l, (is_reply | is_rt).tolist(), video.tolist())
        return n

    def _append_many(
        self, authors: np.ndarray, rows: list[int], secondary: list[bool], video: list[bool]
    ) -> None:
        """Append to the recent-entries lists; the posting-list cap is applied when they are folded
        into the snapshot (every few seconds: far from the 500-entry scan window of any query)."""
        snap, delta, known = self._read
        d_o, d_s, d_v = delta["o"], delta["s"], delta["v"]
        for author, row, sec, vid in zip(authors.tolist(), rows, secondary, video, strict=True):
            (d_s if sec else d_o).setdefault(author, []).append(row)
            if vid:
                d_v.setdefault(author, []).append(row)
        self.delta_size += len(rows) + sum(video)
        new = np.unique(authors)
        new = new[~_member_sorted(new, known)]
        if len(new):
            self._read = (snap, delta, np.sort(np.concatenate([known, new])))

    def rebuild_snapshot(self) -> None:
        """Fold the recent entries into a new snapshot (the service calls this every ~2 s)."""
        with self._lock:
            self._fold()

    def _fold(self) -> None:
        snap, delta, _ = self._read
        a = self._a
        cap = self.config.max_posting_list_size
        new, evicted = snap.fold(delta, cap, lambda rows: self._hot(a, rows))
        self._kill(evicted)  # over the cap: the oldest leave the store (reference Aug+)
        self._evicted += evicted.tolist()  # recycled after the next trim
        self._read = (new, _new_delta(), _NO_IDS)
        self.delta_size = 0

    def _kill(self, rows: np.ndarray) -> None:
        """Posts leave the store: rows marked dead, ids out of the index (rows stay listed until trim)."""
        a = self._a
        rows = rows[(a.flags[rows] & ALIVE) != 0]
        if len(rows):
            a.flags[rows] &= ~np.uint8(ALIVE)
            self._row_of.remove(a.cols["post_id"][rows])

    def delete(self, deletes: Iterable[tuple[int, int]]) -> int:
        """Mark (post_id, deleted_at_s) deleted: the post disappears and its id is tombstoned."""
        deletes = list(deletes)
        if not deletes:
            return 0
        n = 0
        with self._lock:
            rows = self._row_of.lookup(np.fromiter((d[0] for d in deletes), np.int64, count=len(deletes)))
            self._kill(rows[rows >= 0])
            for post_id, deleted_at in deletes:
                if post_id not in self.deleted:
                    self.deleted[post_id] = deleted_at
                    n += 1
        return n

    def trim(self, now_s: int | None = None) -> int:
        """Drop expired and deleted posts' list entries, authors left with nothing, and expired
        tombstones; recycle the rows. Vectorised over the snapshot arrays under the writers' lock
        (ingest waits, queries never do: they keep reading the previous snapshot). Returns the
        number of rows released."""
        now_s = int(time.time()) if now_s is None else now_s
        cutoff = now_s - self.config.retention_s
        with self._lock:
            self._fold()
            a = self._a
            created, flags = a.cols["created_at"], a.flags

            def keep(rows: np.ndarray) -> np.ndarray:
                return (created[rows] >= cutoff) & ((flags[rows] & ALIVE) != 0)

            snap, released = self._read[0].trimmed(keep)
            self._kill(released)
            # re-resolve every reply's parent: afterwards no entry names a row that died before
            # this trim, and such rows are reused only after the next one (see `_Snapshot`)
            snap.refresh_replies(lambda rows: self._hot(a, rows))
            self._read = (snap, *self._read[1:])
            released_l = released.tolist()
            evicted, self._evicted = self._evicted, []
            self._free.extend(self._quarantine)
            self._quarantine = released_l + evicted
            self.deleted = {pid: t for pid, t in self.deleted.items() if t >= cutoff}
        return len(released_l) + len(evicted)

    # ---- derived per-entry facts -----------------------------------------------------------------
    def _parent_rows(self, a: _Arrays, cached: np.ndarray, parent_ids: np.ndarray) -> np.ndarray:
        """Live row of each parent id: the row resolved at insert when it is still alive and still
        holds that id, else a fresh lookup (the parent arrived later or its id moved); -1 = absent."""
        c = np.maximum(cached, 0)
        stale = (cached < 0) | ((a.flags[c] & ALIVE) == 0) | (a.cols["post_id"][c] != parent_ids)
        if stale.any():
            cached = cached.copy()
            cached[stale] = self._row_of.lookup(parent_ids[stale])
        return cached

    def _hot(self, a: _Arrays, rows: np.ndarray) -> np.ndarray:
        """Entry columns for `rows`: created_at; kind (IS_RETWEET / IS_REPLY, and for a reply
        whether its live parent is an original, whether the parent answers the conversation root,
        and whether the reply is also a repost); aux (the reposted user for reposts, else the
        replied-to user); prow (the reply's live parent row, -1 if absent)."""
        rec = _take(a.rec, rows)
        f = a.flags[rows]
        out = np.zeros(len(rows), _ENTRY)
        out["row"], out["created"], out["prow"] = rows, rec["created_at"], -1
        kind = f & np.uint8(IS_RETWEET | IS_REPLY)
        is_rt = (f & IS_RETWEET) != 0
        out["aux"] = np.where(is_rt, rec["source_user_id"], rec["in_reply_to_user_id"])
        rep = np.flatnonzero(f & IS_REPLY)
        if len(rep):
            rr = _take(rec, rep)
            p = self._parent_rows(a, a.parent[rows[rep]], rr["in_reply_to_post_id"])
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

    # ---- reads -------------------------------------------------------------------------------
    def get(self, post_id: int) -> PostRecord | None:
        row = int(self._row_of.lookup(np.array([post_id], np.int64))[0])
        if row < 0:
            return None
        a = self._a
        rows = np.array([row])
        return QueryResult.of(rows, _take(a.rec, rows), a.flags[rows]).records()[0]

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
        follow_arr = np.sort(np.array(following, np.int64))
        if len(follow_arr) > 1:  # a followee listed twice counts once
            follow_arr = follow_arr[np.r_[True, follow_arr[1:] != follow_arr[:-1]]]
        if is_video:
            lists = [("v", cfg.max_videos_per_author)]
        else:
            cap_o = cfg.max_originals_per_author
            cap_r = cfg.max_replies_per_author
            lists = [
                ("o", cap_o if max_originals is None else min(max_originals, cap_o)),
                ("s", cap_r if max_replies is None else min(max_replies, cap_r)),
            ]
        rows, created, a = self._select(lists, follow_arr, excl, viewer_id, now_s)
        return _newest_first(a, rows, created, max_results)

    def _select(
        self,
        lists: Sequence[tuple[str, int]],
        follow_arr: np.ndarray,
        exclude: np.ndarray,
        viewer_id: int,
        now_s: int,
    ) -> tuple[np.ndarray, np.ndarray, _Arrays]:
        """Reference `get_posts_from_map` for one or more (list kind, per-author cap) at once: rows
        (and created_at) that pass every rule, the newest `cap` per author and list. The per-author
        position bookkeeping (segment ids: list k's entries get k*n + author position) is built
        only when some author can hit a limit: exclusions, unfolded entries or a long list."""
        lists = [(name, cap) for name, cap in lists if cap > 0]
        snap, delta, recent_authors = self._read  # one snapshot (+ recent entries) for the query
        if not lists:
            return np.empty(0, np.int64), np.empty(0, np.int64), self._a
        scan = self.config.max_scan_per_author
        slots = snap.index.lookup(follow_arr)
        pos = np.flatnonzero(slots >= 0)
        # one gather for all the lists: entries per (author, list), author-major
        ent, lens = snap.tails(slots[pos], [name for name, _ in lists], scan + len(exclude))
        hits: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * len(lists)
        if len(recent_authors):
            hit_pos = np.flatnonzero(_member_sorted(follow_arr, recent_authors))
            if len(hit_pos):
                hit_authors = follow_arr[hit_pos].tolist()
                hits = [_delta_hits(delta[name], hit_authors, hit_pos) for name, _ in lists]
        a = self._a  # read after collecting rows: records only grow
        caps = np.array([cap for _, cap in lists])
        n_lists = len(lists)
        # the most entries any author can have per list, snapshot part + recent part
        most = lens.max(axis=0) if lens.size else np.zeros(n_lists, np.int64)
        most = most + [0 if h is None else int(h[2].max()) for h in hits]
        recent = [(k, h) for k, h in enumerate(hits) if h is not None]
        over_scan = bool(recent) and bool((most > scan).any())  # the snapshot part is cut already
        ranked = len(exclude) or over_scan or bool((most > caps).any())
        seg = np.empty(0, np.int64)
        if ranked:  # segment id per entry: author position * lists + list, author-major
            seg = np.repeat((pos[:, None] * n_lists + np.arange(n_lists)).ravel(), lens.ravel())
        if recent:  # per author and list: snapshot part, then the newer entries
            ent = _concat([ent, self._hot(a, np.concatenate([h[0] for _, h in recent]))])
            if ranked:
                seg = np.concatenate([seg, *(np.repeat(h[1], h[2]) * n_lists + k for k, h in recent)])
                order = np.argsort(seg, kind="stable")  # sorted runs: a cheap merge
                ent, seg = _take(ent, order), seg[order]
        if not ranked:  # every author within every limit: no per-author pass
            ok = self._rules(a, ent, follow_arr, viewer_id, now_s)
            return ent["row"][ok], ent["created"][ok], a
        if len(exclude):
            keep = ~np.isin(a.cols["post_id"][ent["row"]], exclude)
            ent, seg = _take(ent, keep), seg[keep]
        if len(exclude) or over_scan:
            in_scan = _rank_from_newest(seg) < scan  # the scan limit counts entries after exclusion
            ent, seg = _take(ent, in_scan), seg[in_scan]
        ok = self._rules(a, ent, follow_arr, viewer_id, now_s)
        rows, created, seg = ent["row"][ok], ent["created"][ok], seg[ok]
        within = _rank_from_newest(seg) < caps[seg % n_lists]
        return rows[within], created[within], a

    def _rules(
        self, a: _Arrays, ent: np.ndarray, following: np.ndarray, viewer_id: int, now_s: int
    ) -> np.ndarray:
        """Which entries pass: alive, within retention, not a repost of the viewer's own post, and
        for replies the reference reply rule."""
        rows, kind = ent["row"], ent["kind"]
        cutoff = max(0, now_s - self.config.retention_s)
        ok = ((a.flags[rows] & ALIVE) != 0) & (ent["created"] >= cutoff)
        ok &= ~(((kind & IS_RETWEET) != 0) & (ent["aux"] == viewer_id))
        rep = np.flatnonzero(kind & IS_REPLY)
        if len(rep):
            ok[rep] &= self._replies_ok(a, rows[rep], kind[rep], ent["aux"][rep], ent["prow"][rep], following)
        return ok

    def _replies_ok(
        self,
        a: _Arrays,
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
            h = self._hot(a, rows[stale])
            kind[stale] = h["kind"]  # kind, prow are this query's copies
            live[stale] = h["prow"] >= 0
        ok = live & ((kind & PARENT_ORIGINAL) != 0)
        need = np.flatnonzero(live & ~ok & ((kind & PARENT_TO_ROOT) != 0))
        if len(need):
            users = aux[need]
            mixed = np.flatnonzero(kind[need] & RETWEET_REPLY)  # aux holds the reposted user
            if len(mixed):
                users[mixed] = a.cols["in_reply_to_user_id"][rows[need[mixed]]]
            ok[need] = _member_sorted(users, following)
        return ok


def _delta_hits(
    d: dict[int, list[int]], authors: list[int], positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Recent (unfolded) rows of these followed authors (at these request positions): rows,
    author positions, count per author."""
    if not d:
        return None
    got = list(map(d.get, authors))
    at = [k for k, x in enumerate(got) if x]
    if not at:
        return None
    lists = [got[k] for k in at]
    lens = np.fromiter(map(len, lists), np.int64, count=len(lists))
    rows = np.fromiter(chain.from_iterable(lists), np.int64, count=int(lens.sum()))
    return rows, positions[at], lens


def _concat(ents: list[np.ndarray]) -> np.ndarray:
    if len(ents) == 1:
        return ents[0]
    return np.concatenate([e.view(_ENTRY_BYTES) for e in ents]).view(_ENTRY)


def _newest_first(a: _Arrays, rows: np.ndarray, created: np.ndarray, limit: int) -> QueryResult:
    """The `limit` newest rows, by created_at descending, ties by post id descending (deterministic
    across restarts). A partition keeps only the candidates that can make the cut; their records
    are gathered once (one cache line each) for the tie-break and the result; then one argsort of
    a composite key: seconds since the oldest candidate, then the id's rank."""
    rows = rows[:0] if limit <= 0 else rows
    if len(rows) > limit:
        kth = np.partition(created, len(rows) - limit)[len(rows) - limit]
        keep = created >= kth  # ties at the boundary all stay, so the tie-break below decides
        rows, created = rows[keep], created[keep]
    rec = _take(a.rec, rows)
    if len(rows) > 1:
        created = created.astype(np.int64)
        rank = np.empty(len(rows), np.int64)
        rank[np.argsort(rec["post_id"])] = np.arange(len(rows))
        order = np.argsort(-((created - created.min()) * len(rows) + rank))[:limit]
        rows, rec = rows[order], _take(rec, order)
    return QueryResult.of(rows, rec, a.flags[rows])


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


_EMPTY = np.iinfo(np.int64).min
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class _IntHash:
    """Immutable int64 -> position hash (open addressing, linear probing, load <= 1/4) whose build
    and lookups are vectorised: a query resolves 1,000 author ids in a few numpy passes instead of
    1,000 dict lookups or a binary search over every author."""

    def __init__(self, keys: np.ndarray) -> None:
        bits = max(4, int(np.ceil(np.log2(max(1, len(keys)) * 4))))
        self._shift = np.uint64(64 - bits)
        self._mask = (1 << bits) - 1
        self.keys = np.full(1 << bits, _EMPTY, np.int64)
        self.vals = np.full(1 << bits, -1, np.int32)
        h = self._hash(keys)
        pending = np.arange(len(keys))
        while len(pending):
            hp = h[pending]
            free = self.keys[hp] == _EMPTY
            slot, first = np.unique(hp[free], return_index=True)  # one winner per free slot
            won = pending[free][first]
            self.keys[slot], self.vals[slot] = keys[won], won
            lost = np.ones(len(pending), bool)
            lost[np.flatnonzero(free)[first]] = False
            pending = pending[lost]
            h[pending] = (h[pending] + 1) & self._mask

    def _hash(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _GOLDEN) >> self._shift).astype(np.int64)

    def lookup(self, q: np.ndarray) -> np.ndarray:
        """Position of each key, -1 where absent."""
        out = np.full(len(q), -1, np.int64)
        h, idx = self._hash(q), np.arange(len(q))
        while len(idx):
            k = self.keys[h]
            hit = k == q
            out[idx[hit]] = self.vals[h[hit]]
            go = ~hit & (k != _EMPTY)
            idx, q, h = idx[go], q[go], (h[go] + 1) & self._mask
        return out


Delta = dict[str, dict[int, list[int]]]
_NO_IDS = np.empty(0, np.int64)


def _new_delta() -> Delta:
    return {"o": {}, "s": {}, "v": {}}


_TOMB = _EMPTY + 1  # a removed key: lookups probe past it, inserts may reuse it


class _IdIndex:
    """post id -> row, mutable: open addressing with linear probing in two numpy arrays
    (~24-48 B per post, against ~100 B for a CPython dict), every operation vectorised per batch.
    Writers mutate under the store's lock; lock-free readers stay correct because a value is
    written before its key and growth builds new arrays and swaps them in as one tuple."""

    def __init__(self, capacity: int = 1024) -> None:
        self.count = 0  # live keys
        self._used = 0  # live + removed slots
        self._tab = self._empty(capacity)

    @staticmethod
    def _empty(size: int) -> tuple[np.ndarray, np.ndarray, np.uint64, int]:
        bits = max(4, int(np.ceil(np.log2(max(2, size)))))
        return (
            np.full(1 << bits, _EMPTY, np.int64),
            np.full(1 << bits, -1, np.int32),
            np.uint64(64 - bits),
            (1 << bits) - 1,
        )

    def __len__(self) -> int:
        return self.count

    @property
    def nbytes(self) -> int:
        return self._tab[0].nbytes + self._tab[1].nbytes

    def _slots(self, q: np.ndarray, tab: tuple[np.ndarray, np.ndarray, np.uint64, int]) -> np.ndarray:
        keys, _, shift, mask = tab
        out = np.full(len(q), -1, np.int64)
        h = ((q.astype(np.uint64) * _GOLDEN) >> shift).astype(np.int64)
        idx = np.arange(len(q))
        while len(idx):
            k = keys[h]
            hit = k == q
            out[idx[hit]] = h[hit]
            go = ~hit & (k != _EMPTY)
            idx, q, h = idx[go], q[go], (h[go] + 1) & mask
        return out

    def lookup(self, q: np.ndarray) -> np.ndarray:
        """Row of each id, -1 where absent."""
        tab = self._tab
        slots = self._slots(np.asarray(q, np.int64), tab)
        return np.where(slots >= 0, tab[1][np.maximum(slots, 0)], -1).astype(np.int64)

    def insert(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Add absent, distinct keys."""
        if 2 * (self._used + len(keys)) > len(self._tab[0]):
            self._rebuild(3 * (self.count + len(keys)))
        self._place(self._tab, keys, vals, reuse=True)
        self.count += len(keys)

    def _place(
        self,
        tab: tuple[np.ndarray, np.ndarray, np.uint64, int],
        keys: np.ndarray,
        vals: np.ndarray,
        reuse: bool,
    ) -> None:
        tk, tv, shift, mask = tab
        h = ((keys.astype(np.uint64) * _GOLDEN) >> shift).astype(np.int64)
        pending = np.arange(len(keys))
        while len(pending):
            hp = h[pending]
            k = tk[hp]
            free = (k == _EMPTY) | (k == _TOMB) if reuse else k == _EMPTY
            slot, first = np.unique(hp[free], return_index=True)  # one winner per free slot
            won = pending[free][first]
            self._used += int((tk[slot] == _EMPTY).sum())
            tv[slot] = vals[won]  # value first: a concurrent reader matching the key sees it
            tk[slot] = keys[won]
            lost = np.ones(len(pending), bool)
            lost[np.flatnonzero(free)[first]] = False
            pending = pending[lost]
            h[pending] = (h[pending] + 1) & mask

    def remove(self, keys: np.ndarray) -> None:
        tab = self._tab
        slots = self._slots(np.asarray(keys, np.int64), tab)
        slots = np.unique(slots[slots >= 0])
        tab[0][slots] = _TOMB
        self.count -= len(slots)

    def _rebuild(self, size: int) -> None:
        tk, tv = self._tab[0], self._tab[1]
        live = (tk != _EMPTY) & (tk != _TOMB)
        tab = self._empty(size)
        self._used = 0
        self._place(tab, tk[live], tv[live], reuse=False)
        self._tab = tab


# where each recency list lives: originals and replies + reposts share one CSR ("os": two sublists
# per author, adjacent in memory, as a query reads both), videos have their own ("v")
_SUBLIST = {"o": ("os", 0), "s": ("os", 1), "v": ("v", 0)}
_PER_AUTHOR = {"os": 2, "v": 1}


@dataclass(slots=True)
class _Snapshot:
    """Every per-author list, frozen: author id -> slot (hash), and per CSR (see _SUBLIST) offsets
    by sublist (slot * sublists per author + sublist) into an _ENTRY array, oldest first per list.
    Replaced whole, never mutated once published, so readers need no lock. 24 B per entry.

    An entry's reply facts (kind bits, prow) stay true while the parent row is alive: a row is
    reused only two trims after it died, and every trim re-derives them (`refresh_replies`)."""

    authors: np.ndarray  # slot -> author id
    index: _IntHash
    offsets: dict[str, np.ndarray]
    lists: dict[str, np.ndarray]  # per CSR: _ENTRY array

    @classmethod
    def empty(cls) -> _Snapshot:
        authors = np.empty(0, np.int64)
        return cls(
            authors,
            _IntHash(authors),
            {k: np.zeros(1, np.int64) for k in _PER_AUTHOR},
            {k: np.zeros(0, _ENTRY) for k in _PER_AUTHOR},
        )

    @property
    def n_authors(self) -> int:
        return int((np.diff(self.offsets["os"]).reshape(-1, 2).sum(axis=1) > 0).sum())

    @property
    def nbytes(self) -> int:
        arrays = [self.authors, self.index.keys, self.index.vals, *self.offsets.values()]
        arrays += self.lists.values()
        return sum(a.nbytes for a in arrays)

    def fold(
        self, delta: dict[str, dict[int, list[int]]], cap: int, hot: Callable[[np.ndarray], np.ndarray]
    ) -> tuple[_Snapshot, np.ndarray]:
        """This snapshot with each author's recent entries appended (old slots kept, new authors
        appended), each list cut to its newest `cap` entries. Returns the rows cut from the
        originals and replies + reposts lists (a cut video entry leaves only the video list)."""
        keys = [np.fromiter(d.keys(), np.int64, count=len(d)) for d in delta.values() if d]
        new = np.unique(np.concatenate(keys)) if keys else np.empty(0, np.int64)
        new = new[self.index.lookup(new) < 0]
        authors = np.concatenate([self.authors, new]) if len(new) else self.authors
        index = _IntHash(authors) if len(new) else self.index
        n, n_old = len(authors), len(self.authors)
        offsets, lists = {}, {}
        evicted = np.empty(0, np.int64)
        for csr, per in _PER_AUTHOR.items():
            old_off, old = self.offsets[csr], self.lists[csr]
            m, m_old = n * per, n_old * per
            old_len = np.zeros(m, np.int64)
            old_len[:m_old] = np.diff(old_off)
            tot = old_len.copy()
            sub, lens, rows = [], [], []
            for name, (c, k) in _SUBLIST.items():
                d = delta[name]
                if c == csr and d:
                    sub.append(index.lookup(np.fromiter(d.keys(), np.int64, count=len(d))) * per + k)
                    lens.append(np.fromiter(map(len, d.values()), np.int64, count=len(d)))
                    rows.append(
                        np.fromiter(chain.from_iterable(d.values()), np.int64, count=int(lens[-1].sum()))
                    )
            if sub:
                sub_a, lens_a, flat = np.concatenate(sub), np.concatenate(lens), np.concatenate(rows)
                tot[sub_a] += lens_a
            off = np.r_[0, np.cumsum(tot)]
            out = np.empty(int(off[-1]), _ENTRY)
            if len(old):
                dest = np.repeat(off[:m_old] - old_off[:-1], old_len[:m_old]) + np.arange(len(old))
                out.view(_ENTRY_BYTES)[dest] = old.view(_ENTRY_BYTES)
            if sub:
                src_start = np.cumsum(lens_a) - lens_a
                dest = np.repeat(off[sub_a] + old_len[sub_a] - src_start, lens_a) + np.arange(len(flat))
                out.view(_ENTRY_BYTES)[dest] = hot(flat).view(_ENTRY_BYTES)
            if (tot > cap).any():
                from_end = np.repeat(off[1:], tot) - 1 - np.arange(len(out))
                drop = from_end >= cap
                if csr == "os":
                    evicted = out["row"][drop].astype(np.int64)
                out = _take(out, ~drop)
                off = np.r_[0, np.cumsum(np.minimum(tot, cap))]
            offsets[csr], lists[csr] = off, out
        return _Snapshot(authors, index, offsets, lists), evicted

    def trimmed(self, keep: Callable[[np.ndarray], np.ndarray]) -> tuple[_Snapshot, np.ndarray]:
        """This snapshot with only the entries `keep` accepts, without authors left with none.
        Also returns the rejected originals / replies + reposts rows (each row sits in exactly
        one of those two lists; the video list only repeats some of them)."""
        n = len(self.authors)
        lens, lists = {}, {}
        released = np.empty(0, np.int64)
        for csr, per in _PER_AUTHOR.items():
            ent = self.lists[csr]
            r = ent["row"].astype(np.int64)
            ok = keep(r) if len(r) else np.ones(0, bool)
            sub_of = np.repeat(np.arange(n * per), np.diff(self.offsets[csr]))
            lens[csr] = np.bincount(sub_of[ok], minlength=n * per).reshape(n, per)
            lists[csr] = _take(ent, ok)
            if csr == "os":
                released = r[~ok]
        has_any = sum(v.sum(axis=1) for v in lens.values()) > 0
        authors, index = self.authors, self.index
        if not has_any.all():
            authors = self.authors[has_any]
            index = _IntHash(authors)
            lens = {k: v[has_any] for k, v in lens.items()}
        offsets = {k: np.r_[0, np.cumsum(v.ravel())] for k, v in lens.items()}
        return _Snapshot(authors, index, offsets, lists), released

    def refresh_replies(self, hot: Callable[[np.ndarray], np.ndarray]) -> None:
        """Re-derive every reply entry's parent facts (only on a snapshot not yet published)."""
        for ent in self.lists.values():
            rep = np.flatnonzero(ent["kind"] & IS_REPLY)
            if len(rep):
                h = hot(ent["row"][rep].astype(np.int64))
                ent["kind"][rep], ent["prow"][rep] = h["kind"], h["prow"]

    def tails(self, slots: np.ndarray, names: Sequence[str], tail: int) -> tuple[np.ndarray, np.ndarray]:
        """Entries of the newest `tail` of the given lists (all in one CSR) of each author slot,
        oldest first, author-major; and how many each (author, list) got, shape (authors, lists)."""
        csr = _SUBLIST[names[0]][0]
        per = _PER_AUTHOR[csr]
        off = self.offsets[csr]
        bounds = off[(slots * per)[:, None] + np.arange(per + 1)]  # one cache line per author
        starts, ends = bounds[:, :-1], bounds[:, 1:]
        want = [_SUBLIST[name][1] for name in names]
        if want != list(range(per)):
            starts, ends = starts[:, want], ends[:, want]
        lens = ends - np.maximum(starts, ends - tail)
        flat_lens = lens.ravel()
        cum = np.cumsum(flat_lens)
        total = int(cum[-1]) if len(cum) else 0
        flat = np.repeat((ends.ravel() - flat_lens) - cum + flat_lens, flat_lens) + np.arange(total)
        return _take(self.lists[csr], flat), lens
