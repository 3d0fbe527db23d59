"""The frozen per-author lists (originals, replies + reposts, videos) as CSR arrays of entries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from thunder.store.delta import Delta
from thunder.store.entries import ENTRY, ENTRY_BYTES
from thunder.store.int_hash import IntHash
from thunder.store.records import IS_REPLY
from thunder.store.vector_ops import take

# where each recency list lives: originals and replies + reposts share one CSR ("os": two sublists
# per author, adjacent in memory, as a query reads both), videos have their own ("v")
SUBLIST = {"o": ("os", 0), "s": ("os", 1), "v": ("v", 0)}
PER_AUTHOR = {"os": 2, "v": 1}


@dataclass(slots=True)
class Snapshot:
    """Every per-author list, frozen: author id -> slot (hash), and per CSR (see SUBLIST) offsets
    by sublist (slot * sublists per author + sublist) into an ENTRY array, oldest first per list.
    Replaced whole, never mutated once published, so readers need no lock. 24 B per entry.

    An entry's reply facts (kind bits, prow) stay true while the parent row is alive: a row is
    reused only two trims after it died, and every trim re-derives them (`refresh_replies`)."""

    authors: np.ndarray  # slot -> author id
    index: IntHash
    offsets: dict[str, np.ndarray]
    lists: dict[str, np.ndarray]  # per CSR: ENTRY array

    @classmethod
    def empty(cls) -> Snapshot:
        authors = np.empty(0, np.int64)
        return cls(
            authors,
            IntHash(authors),
            {k: np.zeros(1, np.int64) for k in PER_AUTHOR},
            {k: np.zeros(0, ENTRY) for k in PER_AUTHOR},
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
        self, delta: Delta, cap: int, hot: Callable[[np.ndarray], np.ndarray]
    ) -> tuple[Snapshot, np.ndarray]:
        """This snapshot with each author's recent entries appended (old slots kept, new authors
        appended), each list cut to its newest `cap` entries. Returns the rows cut from the
        originals and replies + reposts lists (a cut video entry leaves only the video list)."""
        keys = [np.fromiter(d.keys(), np.int64, count=len(d)) for d in delta.values() if d]
        new = np.unique(np.concatenate(keys)) if keys else np.empty(0, np.int64)
        new = new[self.index.lookup(new) < 0]
        authors = np.concatenate([self.authors, new]) if len(new) else self.authors
        index = IntHash(authors) if len(new) else self.index
        n, n_old = len(authors), len(self.authors)
        offsets, lists = {}, {}
        evicted = np.empty(0, np.int64)
        for csr, per in PER_AUTHOR.items():
            old_off, old = self.offsets[csr], self.lists[csr]
            m, m_old = n * per, n_old * per
            old_len = np.zeros(m, np.int64)
            old_len[:m_old] = np.diff(old_off)
            tot = old_len.copy()
            sub, lens, rows = [], [], []
            for name, (c, k) in SUBLIST.items():
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
            out = np.empty(int(off[-1]), ENTRY)
            if len(old):
                dest = np.repeat(off[:m_old] - old_off[:-1], old_len[:m_old]) + np.arange(len(old))
                out.view(ENTRY_BYTES)[dest] = old.view(ENTRY_BYTES)
            if sub:
                src_start = np.cumsum(lens_a) - lens_a
                dest = np.repeat(off[sub_a] + old_len[sub_a] - src_start, lens_a) + np.arange(len(flat))
                out.view(ENTRY_BYTES)[dest] = hot(flat).view(ENTRY_BYTES)
            if (tot > cap).any():
                from_end = np.repeat(off[1:], tot) - 1 - np.arange(len(out))
                drop = from_end >= cap
                if csr == "os":
                    evicted = out["row"][drop].astype(np.int64)
                out = take(out, ~drop)
                off = np.r_[0, np.cumsum(np.minimum(tot, cap))]
            offsets[csr], lists[csr] = off, out
        return Snapshot(authors, index, offsets, lists), evicted

    def trimmed(self, keep: Callable[[np.ndarray], np.ndarray]) -> tuple[Snapshot, np.ndarray]:
        """This snapshot with only the entries `keep` accepts, without authors left with none.
        Also returns the rejected originals / replies + reposts rows (each row sits in exactly
        one of those two lists; the video list only repeats some of them)."""
        n = len(self.authors)
        lens, lists = {}, {}
        released = np.empty(0, np.int64)
        for csr, per in PER_AUTHOR.items():
            ent = self.lists[csr]
            r = ent["row"].astype(np.int64)
            ok = keep(r) if len(r) else np.ones(0, bool)
            sub_of = np.repeat(np.arange(n * per), np.diff(self.offsets[csr]))
            lens[csr] = np.bincount(sub_of[ok], minlength=n * per).reshape(n, per)
            lists[csr] = take(ent, ok)
            if csr == "os":
                released = r[~ok]
        has_any = sum(v.sum(axis=1) for v in lens.values()) > 0
        authors, index = self.authors, self.index
        if not has_any.all():
            authors = self.authors[has_any]
            index = IntHash(authors)
            lens = {k: v[has_any] for k, v in lens.items()}
        offsets = {k: np.r_[0, np.cumsum(v.ravel())] for k, v in lens.items()}
        return Snapshot(authors, index, offsets, lists), released

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
        csr = SUBLIST[names[0]][0]
        per = PER_AUTHOR[csr]
        off = self.offsets[csr]
        bounds = off[(slots * per)[:, None] + np.arange(per + 1)]  # one cache line per author
        starts, ends = bounds[:, :-1], bounds[:, 1:]
        want = [SUBLIST[name][1] for name in names]
        if want != list(range(per)):
            starts, ends = starts[:, want], ends[:, want]
        lens = ends - np.maximum(starts, ends - tail)
        flat_lens = lens.ravel()
        cum = np.cumsum(flat_lens)
        total = int(cum[-1]) if len(cum) else 0
        flat = np.repeat((ends.ravel() - flat_lens) - cum + flat_lens, flat_lens) + np.arange(total)
        return take(self.lists[csr], flat), lens
