"""`PostStore`: the in-memory store of every post of the retention window, and its insert /
delete / fold / trim / query operations. See `thunder/store/__init__.py` for the layout.

Writers (ingest, fold, trim) hold a lock; readers take none: they read the (snapshot, delta,
delta authors) tuple once, a record is written before it is listed, the record array only grows
(a reader reads it after collecting rows), and a row is reused only a full trim cycle after it
left every list."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

import numpy as np

from thunder.config import StoreConfig
from thunder.store.columns import Arrays
from thunder.store.delta import NO_IDS, Delta, delta_hits, new_delta
from thunder.store.entries import concat_entries, hot_entries
from thunder.store.id_index import IdIndex
from thunder.store.newest import newest_first
from thunder.store.query_result import QueryResult
from thunder.store.records import ALIVE, HAS_VIDEO, INT_FIELDS, IS_REPLY, IS_RETWEET, PostLike, PostRecord
from thunder.store.rules import entries_pass
from thunder.store.snapshot import Snapshot
from thunder.store.vector_ops import member_sorted, rank_from_newest, take


class PostStore:
    """Every post of the retention window: writes under one lock, lock-free queries (see above)."""

    def __init__(self, config: StoreConfig | None = None, capacity: int = 1024) -> None:
        self.config = config or StoreConfig()
        self._a = Arrays.new(capacity)
        self._n = 0  # high-water row count
        self._free: list[int] = []
        self._row_of = IdIndex(capacity)  # post_id -> row of the live post
        self.deleted: dict[int, int] = {}  # tombstones: post_id -> deleted_at (s)
        self._evicted: list[int] = []
        # rows released by a trim are reused only after the next trim (minutes later): a query still
        # reading an older snapshot can never see a row change owner under it
        self._quarantine: list[int] = []
        # the per-author lists = an immutable CSR snapshot + the entries appended since it was built
        # (small per-author Python lists) + the sorted ids of the authors those belong to (so a
        # query finds its few recent authors in one vectorised search), swapped together as one
        # tuple so readers need no lock
        self._read: tuple[Snapshot, Delta, np.ndarray] = (Snapshot.empty(), new_delta(), NO_IDS)
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
        """Insert creates. Returns how many were added. Takes PostRecords or protobuf `Post`s
        directly (same field names; unset optional ids read as 0).

        One Python pass reads the fields; everything else is per batch and vectorised, with the
        semantics of inserting one post after the other: the batch is ordered by created_at
        (stable), the first copy of an id wins, tombstoned or present ids are skipped."""
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
            for k, name in enumerate(INT_FIELDS):
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
                # created_at order (posts are inserted as if one after the other)
                by_row = np.argsort(rows)
                at = by_row[np.minimum(np.searchsorted(rows[by_row], src), n - 1)]
                src[(rows[at] == src) & (at >= rt)] = -1
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
        new = new[~member_sorted(new, known)]
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
        new, evicted = snap.fold(delta, cap, lambda rows: hot_entries(a, self._row_of, rows))
        self._kill(evicted)  # over the cap: the oldest leave the store, not just the list
        self._evicted += evicted.tolist()  # recycled after the next trim
        self._read = (new, new_delta(), NO_IDS)
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
            # this trim, and such rows are reused only after the next one (see `Snapshot`)
            snap.refresh_replies(lambda rows: hot_entries(a, self._row_of, rows))
            self._read = (snap, *self._read[1:])
            released_l = released.tolist()
            evicted, self._evicted = self._evicted, []
            self._free.extend(self._quarantine)
            self._quarantine = released_l + evicted
            self.deleted = {pid: t for pid, t in self.deleted.items() if t >= cutoff}
        return len(released_l) + len(evicted)

    # ---- reads -------------------------------------------------------------------------------
    def get(self, post_id: int) -> PostRecord | None:
        row = int(self._row_of.lookup(np.array([post_id], np.int64))[0])
        if row < 0:
            return None
        a = self._a
        rows = np.array([row])
        return QueryResult.of(rows, take(a.rec, rows), a.flags[rows]).records()[0]

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
        return newest_first(a, rows, created, max_results)

    def _select(
        self,
        lists: Sequence[tuple[str, int]],
        follow_arr: np.ndarray,
        exclude: np.ndarray,
        viewer_id: int,
        now_s: int,
    ) -> tuple[np.ndarray, np.ndarray, Arrays]:
        """The per-author selection for one or more (list kind, per-author cap) at once: rows
        (and created_at) that pass every rule, the newest `cap` per author and list. The per-author
        position bookkeeping (segment ids: list k's entries get k*n + author position) is built
        only when some author can hit a limit: exclusions, unfolded entries or a long list."""
        lists = [(name, cap) for name, cap in lists if cap > 0]
        snap, delta, recent_authors = self._read  # one snapshot (+ recent entries) for the query
        if not lists:
            return np.empty(0, np.int64), np.empty(0, np.int64), self._a
        scan = self.config.max_scan_per_author
        cutoff = max(0, now_s - self.config.retention_s)
        slots = snap.index.lookup(follow_arr)
        pos = np.flatnonzero(slots >= 0)
        # one gather for all the lists: entries per (author, list), author-major
        ent, lens = snap.tails(slots[pos], [name for name, _ in lists], scan + len(exclude))
        hits: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * len(lists)
        if len(recent_authors):
            hit_pos = np.flatnonzero(member_sorted(follow_arr, recent_authors))
            if len(hit_pos):
                hit_authors = follow_arr[hit_pos].tolist()
                hits = [delta_hits(delta[name], hit_authors, hit_pos) for name, _ in lists]
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
            recent_rows = np.concatenate([h[0] for _, h in recent])
            ent = concat_entries([ent, hot_entries(a, self._row_of, recent_rows)])
            if ranked:
                seg = np.concatenate([seg, *(np.repeat(h[1], h[2]) * n_lists + k for k, h in recent)])
                order = np.argsort(seg, kind="stable")  # sorted runs: a cheap merge
                ent, seg = take(ent, order), seg[order]
        if not ranked:  # every author within every limit: no per-author pass
            ok = entries_pass(a, self._row_of, ent, follow_arr, viewer_id, cutoff)
            return ent["row"][ok], ent["created"][ok], a
        if len(exclude):
            keep = ~np.isin(a.cols["post_id"][ent["row"]], exclude)
            ent, seg = take(ent, keep), seg[keep]
        if len(exclude) or over_scan:
            in_scan = rank_from_newest(seg) < scan  # the scan limit counts entries after exclusion
            ent, seg = take(ent, in_scan), seg[in_scan]
        ok = entries_pass(a, self._row_of, ent, follow_arr, viewer_id, cutoff)
        rows, created, seg = ent["row"][ok], ent["created"][ok], seg[ok]
        within = rank_from_newest(seg) < caps[seg % n_lists]
        return rows[within], created[within], a
