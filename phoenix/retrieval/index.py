"""Live FAISS inner-product index of candidate-tower vectors (reference checklist 37-38).

Posts live in slots (slot = FAISS label): post id, author id and creation time per slot in numpy
arrays, `post_id -> slot` in a dict. Exact (`IndexFlatIP`) below `exact_max_size` posts, HNSW
above. Removal (delete / retention eviction) marks the slot dead; searches skip dead slots with an
`IDSelectorBitmap`, and the index is compacted (rebuilt from the live vectors) once dead slots
exceed `compact_fraction` — HNSW cannot remove in place, so one mechanism serves both types.
All public methods take one lock: FAISS does not allow adds concurrent with searches."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from foryou.snowflake import timestamps_ms

RETENTION_MS = 48 * 3_600_000


@dataclass(slots=True)
class IndexConfig:
    exact_max_size: int = 100_000  # above this many live posts a (re)build uses HNSW
    hnsw_m: int = 32
    ef_construction: int = 64
    ef_search: int = 1_200  # at least top_k is used
    retention_ms: int = RETENTION_MS
    compact_fraction: float = 0.25
    num_threads: int = 0  # 0 = FAISS default

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PostIndex:
    def __init__(self, dim: int, config: IndexConfig | None = None, capacity_hint: int = 0) -> None:
        self.dim = dim
        self.config = config or IndexConfig()
        if self.config.num_threads:
            faiss.omp_set_num_threads(self.config.num_threads)
        self._lock = threading.RLock()
        self._post = np.zeros(0, dtype=np.int64)
        self._author = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        self._slot: dict[int, int] = {}
        self._n = 0  # slots used
        self._bitmap: np.ndarray | None = None  # cached packed alive bitmap (None = stale)
        self._index = self._new_index(capacity_hint)

    # --- structure ---

    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(self._index, faiss.IndexHNSWFlat) else "flat"

    def _new_index(self, expected: int) -> faiss.Index:
        if expected > self.config.exact_max_size:
            idx = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = self.config.ef_construction
            return idx
        return faiss.IndexFlatIP(self.dim)

    def _grow(self, need: int) -> None:
        cap = len(self._post)
        if need <= cap:
            return
        new = max(need, 2 * cap, 1024)
        for name, dtype in (("_post", np.int64), ("_author", np.int64), ("_alive", bool)):
            arr = np.zeros(new, dtype=dtype)
            arr[:cap] = getattr(self, name)
            setattr(self, name, arr)

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, post_id: int) -> bool:
        return int(post_id) in self._slot

    def author_of(self, post_id: int) -> int | None:
        s = self._slot.get(int(post_id))
        return None if s is None else int(self._author[s])

    # --- mutation ---

    def add(self, post_ids: np.ndarray, author_ids: np.ndarray, vectors: np.ndarray) -> int:
        """Adds posts not yet present (re-adding a present id is a no-op). Returns the number added."""
        post_ids = np.asarray(post_ids, dtype=np.int64)
        author_ids = np.asarray(author_ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            _, first = np.unique(post_ids, return_index=True)
            keep = np.array([i for i in np.sort(first) if int(post_ids[i]) not in self._slot], dtype=np.int64)
            if len(keep) == 0:
                return 0
            if self.kind == "flat" and len(self) + len(keep) > self.config.exact_max_size:
                self._rebuild(extra=len(keep))  # switch to HNSW before it grows past the threshold
            s0, n = self._n, len(keep)
            self._grow(s0 + n)
            self._post[s0 : s0 + n] = post_ids[keep]
            self._author[s0 : s0 + n] = author_ids[keep]
            self._alive[s0 : s0 + n] = True
            self._slot.update(zip(post_ids[keep].tolist(), range(s0, s0 + n), strict=True))
            self._index.add(vectors[keep])
            self._n += n
            self._bitmap = None
            return n

    def remove(self, post_ids: Any) -> int:
        with self._lock:
            n = 0
            for p in np.asarray(post_ids, dtype=np.int64).reshape(-1).tolist():
                s = self._slot.pop(p, None)
                if s is not None:
                    self._alive[s] = False
                    n += 1
            if n:
                self._bitmap = None
                self._maybe_compact()
            return n

    def evict(self, now_ms: int) -> int:
        """Removes posts created before now - retention (creation time from the snowflake id)."""
        with self._lock:
            live = np.flatnonzero(self._alive[: self._n])
            if len(live) == 0:
                return 0
            old = live[timestamps_ms(self._post[live]) < now_ms - self.config.retention_ms]
            return self.remove(self._post[old]) if len(old) else 0

    def _maybe_compact(self) -> None:
        dead = self._n - len(self._slot)
        if dead and dead > self.config.compact_fraction * max(self._n, 1):
            self._rebuild()

    def _rebuild(self, extra: int = 0) -> None:
        live = np.flatnonzero(self._alive[: self._n])
        vecs = self._index.reconstruct_n(0, self._n)[live] if self._n else np.zeros((0, self.dim), np.float32)
        post, author = self._post[live].copy(), self._author[live].copy()
        self._index = self._new_index(len(live) + extra)
        self._post = np.zeros(0, dtype=np.int64)
        self._author = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        self._slot, self._n, self._bitmap = {}, 0, None
        if len(live):
            self._grow(len(live))
            self._post[: len(live)] = post
            self._author[: len(live)] = author
            self._alive[: len(live)] = True
            self._slot = dict(zip(post.tolist(), range(len(live)), strict=True))
            self._index.add(np.ascontiguousarray(vecs))
            self._n = len(live)

    def live_posts(self) -> tuple[np.ndarray, np.ndarray]:
        """(post ids, author ids) of every live post."""
        with self._lock:
            live = np.flatnonzero(self._alive[: self._n])
            return self._post[live].copy(), self._author[live].copy()

    # --- search ---

    def search(
        self,
        query: np.ndarray,
        top_k: int,
        exclude_post_ids: Any = (),
        exclude_author_id: int | None = None,
    ) -> list[tuple[int, int, float]]:
        """Best `top_k` live posts by inner product: (post_id, author_id, score), best first,
        skipping `exclude_post_ids` and the posts of `exclude_author_id` (the user's own)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        excl = {int(x) for x in exclude_post_ids}
        with self._lock:
            if not self._slot or top_k <= 0:
                return []
            own = 0
            if exclude_author_id is not None:
                own = int((self._author[: self._n][self._alive[: self._n]] == exclude_author_id).sum())
            k = min(top_k + len(excl) + own, self._n)
            params = self._params(k)
            scores, labels = self._index.search(q, k, params=params)
            out: list[tuple[int, int, float]] = []
            for s, lab in zip(scores[0].tolist(), labels[0].tolist(), strict=True):
                if lab < 0:
                    continue
                pid, aid = int(self._post[lab]), int(self._author[lab])
                if pid in excl or (exclude_author_id is not None and aid == exclude_author_id):
                    continue
                out.append((pid, aid, float(s)))
                if len(out) == top_k:
                    break
            return out

    def _params(self, k: int) -> faiss.SearchParameters | None:
        sel = None
        if len(self._slot) < self._n:  # dead slots present
            if self._bitmap is None:
                self._bitmap = np.packbits(self._alive[: self._n], bitorder="little")
            sel = faiss.IDSelectorBitmap(self._n, faiss.swig_ptr(self._bitmap))
        if self.kind == "hnsw":
            p = faiss.SearchParametersHNSW()
            p.efSearch = max(self.config.ef_search, k)
        else:
            if sel is None:
                return None
            p = faiss.SearchParameters()
        if sel is not None:
            p.sel = sel
            p._sel_ref = sel  # keep the selector alive for the call
        return p

    def exact_search(self, query: np.ndarray, top_k: int) -> list[int]:
        """Brute-force top-k post ids over the live posts (the recall reference)."""
        with self._lock:
            live = np.flatnonzero(self._alive[: self._n])
            vecs = self._index.reconstruct_n(0, self._n)[live]
            s = vecs @ np.asarray(query, dtype=np.float32).reshape(-1)
            top = np.argsort(-s, kind="stable")[:top_k]
            return self._post[live][top].tolist()

    # --- snapshots ---

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        with self._lock:
            faiss.write_index(self._index, str(d / "index.faiss"))
            np.savez(
                d / "slots.npz",
                post=self._post[: self._n],
                author=self._author[: self._n],
                alive=self._alive[: self._n],
            )
            (d / "index.json").write_text(json.dumps({"dim": self.dim, "config": self.config.to_dict()}))

    @classmethod
    def load(cls, directory: str | Path, config: IndexConfig | None = None) -> PostIndex:
        d = Path(directory)
        meta = json.loads((d / "index.json").read_text())
        idx = cls(int(meta["dim"]), config or IndexConfig(**meta["config"]))
        with np.load(d / "slots.npz", allow_pickle=False) as z:
            post, author, alive = z["post"], z["author"], z["alive"]
        idx._index = faiss.read_index(str(d / "index.faiss"))
        if idx._index.ntotal != len(post):
            raise ValueError(f"{d}: index has {idx._index.ntotal} vectors but {len(post)} slots")
        idx._grow(len(post))
        idx._post[: len(post)], idx._author[: len(post)], idx._alive[: len(post)] = post, author, alive
        idx._n = len(post)
        idx._slot = {int(p): i for i, p in enumerate(post.tolist()) if alive[i]}
        return idx

    def stats(self) -> dict[str, Any]:
        with self._lock:
            per_vec = 4 * self.dim + (8 * self.config.hnsw_m if self.kind == "hnsw" else 0)
            return {
                "kind": self.kind,
                "posts": len(self._slot),
                "slots": self._n,
                "approx_bytes": int(self._n * (per_vec + 17) + len(self._slot) * 100),
            }
