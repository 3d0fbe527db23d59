"""Live FAISS inner-product index of candidate-tower vectors: posts are added as they arrive and
removed on delete or retention expiry.

Posts live in slots (slot = FAISS label): post id, author id and creation time per slot in numpy
arrays, `post_id -> slot` in a dict. Exact (`IndexFlatIP`) below `exact_max_size` posts; above
it (default) 4-bit PQ fast-scan over every post with exact re-ranking of the best candidates —
a brute-force scan whose recall does not depend on where user vectors fall, unlike IVF/HNSW
(both configurable; docs/perf/retrieval.md has the measurements). Removal (delete / retention
eviction) marks the slot dead; searches skip dead slots (an `IDSelectorBitmap`, or filtering the
results for PQ, which takes no selector) and the index is compacted (rebuilt from the live
vectors) once dead slots exceed `compact_fraction` — HNSW and PQ cannot remove in place, so one
mechanism serves every type.
All public methods take one lock: FAISS does not allow adds concurrent with searches.

GPU (`gpu=N`, chosen by phoenix.device.faiss_gpu_for: a CUDA device and a FAISS built with GPUs):
the exact (flat) index lives on that GPU; PQ fast-scan and HNSW have no FAISS GPU version and stay
on the CPU. A GPU index takes no IDSelector: dead slots are over-fetched and filtered, as for PQ.
Snapshots are always written as CPU indexes."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from foryou.core.events import RETENTION_MS
from foryou.core.snowflake import timestamps_ms

SNAPSHOT_META = "index.json"
SNAPSHOT_FORMAT = "phoenix-retrieval-index/1"


@dataclass(slots=True)
class IndexConfig:
    exact_max_size: int = 100_000  # above this many live posts a (re)build uses `large_kind`
    # "pq": 4-bit PQ fast-scan over every post, exact re-ranking of the best k * refine_k_factor;
    # "ivf": IVF-Flat; "hnsw". pq and ivf are trained on the live vectors at each (re)build.
    large_kind: str = "pq"
    pq_m: int = 0  # sub-quantizers (4 bits each); 0 = dim (one per dimension, 32 B/post at dim 64)
    refine_k_factor: float = 4.0
    hnsw_m: int = 32
    ef_construction: int = 64
    ef_search: int = 1_200  # at least top_k is used
    ivf_nlist: int = 0  # 0 = 4 * sqrt(posts), at most posts / 39
    ivf_nprobe: int = 48
    ivf_train_size: int = 100_000  # k-means sample
    retention_ms: int = RETENTION_MS
    compact_fraction: float = 0.25
    num_threads: int = 0  # FAISS threads of the constructing thread (builds); 0 = FAISS default
    # FAISS threads of each searching thread (OpenMP's setting is per thread): one query on 1
    # thread measured 2.1 ms p50 against 5.0 ms on 2 (docs/perf/retrieval.md); 0 = leave as is
    search_threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PostIndex:
    def __init__(
        self, dim: int, config: IndexConfig | None = None, capacity_hint: int = 0, gpu: int | None = None
    ) -> None:
        self.dim = dim
        self.config = config or IndexConfig()
        self.gpu = gpu  # FAISS GPU ordinal for the exact index; None = CPU only
        if self.config.num_threads:
            faiss.omp_set_num_threads(self.config.num_threads)
        self._lock = threading.RLock()
        self._post = np.zeros(0, dtype=np.int64)
        self._author = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        self._slot: dict[int, int] = {}
        self._n = 0  # slots used
        self._bitmap: np.ndarray | None = None  # cached packed alive bitmap (None = stale)
        self._on_gpu = False
        self._index = self._place(self._new_index(capacity_hint))

    # --- structure ---

    @property
    def on_gpu(self) -> bool:
        return self._on_gpu

    def _place(self, index: faiss.Index) -> faiss.Index:
        """A flat index onto the configured GPU (the other kinds have no FAISS GPU version)."""
        self._on_gpu = False
        if self.gpu is None or type(index) is not faiss.IndexFlatIP:
            return index
        from phoenix.device import faiss_index_to_gpu  # pragma: no cover - needs faiss-gpu

        self._on_gpu = True  # pragma: no cover
        return faiss_index_to_gpu(index, self.gpu)  # pragma: no cover

    @property
    def kind(self) -> str:
        if isinstance(self._index, faiss.IndexHNSWFlat):
            return "hnsw"
        if isinstance(self._index, faiss.IndexRefine):
            return "pq"
        return "ivf" if isinstance(self._index, faiss.IndexIVFFlat) else "flat"

    def _new_index(self, expected: int, sample: np.ndarray | None = None) -> faiss.Index:
        """Flat up to `exact_max_size`, else HNSW, or IVF trained on `sample` (IVF needs vectors to
        train on: without them the index stays flat until the next rebuild)."""
        cfg = self.config
        if expected > cfg.exact_max_size and cfg.large_kind == "hnsw":
            idx = faiss.IndexHNSWFlat(self.dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = cfg.ef_construction
            return idx
        if expected > cfg.exact_max_size and sample is not None and len(sample) >= 1_000:
            if cfg.large_kind == "pq":
                m = cfg.pq_m or self.dim
                pq = faiss.index_factory(self.dim, f"PQ{m}x4fs,RFlat", faiss.METRIC_INNER_PRODUCT)
                rows = np.random.default_rng(0).permutation(len(sample))[: cfg.ivf_train_size]
                pq.train(np.ascontiguousarray(sample[np.sort(rows)]))
                return pq
            if cfg.large_kind != "ivf":
                raise ValueError(f"unknown index kind {cfg.large_kind!r} (pq | ivf | hnsw)")
            nlist = cfg.ivf_nlist or int(4 * math.sqrt(expected))
            nlist = max(1, min(nlist, len(sample) // 39))
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.cp.seed = 0
            rows = np.random.default_rng(0).permutation(len(sample))[: max(cfg.ivf_train_size, nlist * 39)]
            ivf.train(np.ascontiguousarray(sample[np.sort(rows)]))
            ivf.make_direct_map()  # reconstruct() for rebuilds and exact search
            return ivf
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
                # switch type before it grows past the threshold (IVF trains on old + new vectors)
                self._rebuild(extra=vectors[keep])
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

    def _rebuild(self, extra: np.ndarray | None = None) -> None:
        """New index of the live vectors (+ room for `extra`, which also joins an IVF's training)."""
        live = np.flatnonzero(self._alive[: self._n])
        vecs = self._index.reconstruct_n(0, self._n)[live] if self._n else np.zeros((0, self.dim), np.float32)
        post, author = self._post[live].copy(), self._author[live].copy()
        sample = vecs if extra is None or len(extra) == 0 else np.concatenate([vecs, extra])
        self._index = self._place(self._new_index(len(sample), sample))
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
        if self.config.search_threads:
            faiss.omp_set_num_threads(self.config.search_threads)
        with self._lock:
            if not self._slot or top_k <= 0:
                return []
            # over-fetch by the exclusions plus a margin for the user's own posts; in the rare
            # case the filter leaves fewer than top_k while more posts exist, search again wider
            want = top_k + len(excl) + 16
            if self.kind == "pq" or self._on_gpu:  # dead slots come back: over-fetch by their share
                want = int(want * self._n / len(self._slot)) + 1
            k = min(want, self._n)
            excl_arr = np.fromiter(excl, dtype=np.int64, count=len(excl))
            while True:
                scores, labels = self._index.search(q, k, params=self._params(k))
                found = labels[0] >= 0
                lab, sc = labels[0][found], scores[0][found]
                # dead slots (PQ takes no selector), given exclusions and the user's own posts
                keep = self._alive[lab]
                if exclude_author_id is not None:
                    keep &= self._author[lab] != exclude_author_id
                if len(excl_arr):
                    keep &= ~np.isin(self._post[lab], excl_arr)
                sel = np.flatnonzero(keep)[:top_k]
                if len(sel) == top_k or k >= self._n:
                    ls = lab[sel]
                    return list(
                        zip(self._post[ls].tolist(), self._author[ls].tolist(), sc[sel].tolist(), strict=True)
                    )
                k = min(2 * k, self._n)

    def _params(self, k: int) -> faiss.SearchParameters | None:
        if self._on_gpu:  # pragma: no cover - no IDSelector on a GPU index: results are filtered
            return None
        if self.kind == "pq":
            rp = faiss.IndexRefineSearchParameters()
            rp.k_factor = self.config.refine_k_factor
            return rp
        sel = None
        if len(self._slot) < self._n:  # dead slots present
            if self._bitmap is None:
                self._bitmap = np.packbits(self._alive[: self._n], bitorder="little")
            sel = faiss.IDSelectorBitmap(self._n, faiss.swig_ptr(self._bitmap))
        if self.kind == "hnsw":
            p = faiss.SearchParametersHNSW()
            p.efSearch = max(self.config.ef_search, k)
        elif self.kind == "ivf":
            p = faiss.SearchParametersIVF()
            p.nprobe = self.config.ivf_nprobe
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

    def save(self, directory: str | Path, meta: dict[str, Any] | None = None, exclusive: bool = True) -> int:
        """Writes a snapshot (index.faiss, slots.npz, index.json with `meta`) atomically: into a
        sibling temp directory, then renamed over `directory`. The index is serialised to memory
        under the lock and written to disk outside it. `exclusive=False` skips the lock, so
        searches run on during the copy: only for a caller that holds off every mutation itself
        (the handler's update lock). Returns the bytes written."""
        d = Path(directory)
        with self._lock if exclusive else contextlib.nullcontext():
            cpu_index = faiss.index_gpu_to_cpu(self._index) if self._on_gpu else self._index
            blob = faiss.serialize_index(cpu_index)
            post, author = self._post[: self._n].copy(), self._author[: self._n].copy()
            alive = self._alive[: self._n].copy()
            info = {
                "format": SNAPSHOT_FORMAT,
                "dim": self.dim,
                "config": self.config.to_dict(),
                "kind": self.kind,
                "posts": len(self._slot),
                "memory_bytes": self.memory_bytes(),
                **(meta or {}),
            }
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.", dir=d.parent))
        try:
            blob.tofile(tmp / "index.faiss")
            np.savez(tmp / "slots.npz", post=post, author=author, alive=alive)
            (tmp / SNAPSHOT_META).write_text(json.dumps(info, indent=2))
            old = d.with_name(f".{d.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            if d.exists():
                os.replace(d, old)
            os.replace(tmp, d)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return int(blob.nbytes + post.nbytes + author.nbytes + alive.nbytes)

    @classmethod
    def load(
        cls, directory: str | Path, config: IndexConfig | None = None, gpu: int | None = None
    ) -> PostIndex:
        d = Path(directory)
        meta = read_snapshot_meta(d)
        idx = cls(int(meta["dim"]), config or IndexConfig(**meta["config"]), gpu=gpu)
        with np.load(d / "slots.npz", allow_pickle=False) as z:
            post, author, alive = z["post"], z["author"], z["alive"]
        idx._index = faiss.read_index(str(d / "index.faiss"))
        if idx._index.ntotal != len(post) or idx._index.d != idx.dim:
            raise ValueError(f"{d}: index has {idx._index.ntotal} vectors but {len(post)} slots")
        idx._index = idx._place(idx._index)
        idx._grow(len(post))
        idx._post[: len(post)], idx._author[: len(post)], idx._alive[: len(post)] = post, author, alive
        idx._n = len(post)
        idx._slot = {int(p): i for i, p in enumerate(post.tolist()) if alive[i]}
        return idx

    def memory_bytes(self) -> int:
        """Bytes held: FAISS vectors (+ HNSW graph links, offsets and levels), the slot arrays and
        the post id -> slot dict (~100 bytes per entry in CPython)."""
        with self._lock:
            n = self._index.ntotal
            b = n * self.dim * 4
            if isinstance(self._index, faiss.IndexHNSWFlat):
                h = self._index.hnsw
                b += 4 * h.neighbors.size() + 8 * h.offsets.size() + 4 * h.levels.size()
            elif isinstance(self._index, faiss.IndexIVFFlat):  # list ids, direct map, centroids
                b += 16 * n + self._index.nlist * self.dim * 4
            elif isinstance(self._index, faiss.IndexRefine):  # 4-bit codes (+ refine vectors above)
                b += n * faiss.downcast_index(self._index.base_index).pq.M // 2
            b += len(self._post) * 17  # post + author int64 and alive bool per allocated slot
            return int(b + 100 * len(self._slot))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "kind": self.kind,
                "gpu": self._on_gpu,
                "posts": len(self._slot),
                "slots": self._n,
                "dim": self.dim,
                "memory_bytes": self.memory_bytes(),
            }


def read_snapshot_meta(directory: str | Path) -> dict[str, Any]:
    """The snapshot's index.json (dim, config, kind, posts, memory and whatever `save` was given)."""
    p = Path(directory) / SNAPSHOT_META
    if not p.exists():
        raise FileNotFoundError(f"{directory}: no {SNAPSHOT_META} (not an index snapshot)")
    return json.loads(p.read_text())
