"""Transport-free ranking handler: validation, bounded in-flight requests with a short admission
queue, deadlines, a score cache (score_cache.py), hot model reload and Prometheus metrics. The gRPC
servicer (servicer.py) only converts protos."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from prometheus_client import Counter, Gauge, Histogram, Info

from phoenix.compute import run_compute
from phoenix.ranker.checkpoint import load_model
from phoenix.ranker.config import NUM_ACTIONS, NUM_CONTINUOUS
from phoenix.ranker.features import CandidateArrays, HistoryArrays, build_batch
from phoenix.ranker.model import RankerModel
from phoenix.ranker.score_cache import ScoreCache
from phoenix.ranker.sids import SidLookup

PREDICT_SECONDS = Histogram(
    "phoenix_ranker_predict_seconds",
    "Ranking request time after admission (cache lookups, context encode, candidate scoring)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
QUEUE_SECONDS = Histogram(
    "phoenix_ranker_queue_wait_seconds",
    "Time a ranking request waited for an in-flight slot",
    buckets=(0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
CANDIDATES = Histogram(
    "phoenix_ranker_candidates",
    "Candidates per ranking request",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
REJECTED = Counter("phoenix_ranker_rejected_total", "Ranking requests refused", ["reason"])
IN_FLIGHT = Gauge("phoenix_ranker_in_flight", "Ranking requests being scored")
RELOADS = Counter("phoenix_ranker_reloads_total", "Model reload attempts", ["outcome"])
MODEL = Info("phoenix_ranker_model", "The ranker checkpoint being served")


class OverloadedError(RuntimeError):
    """Too many requests in flight (gRPC RESOURCE_EXHAUSTED)."""


class DeadlineExceededError(RuntimeError):
    """The request's deadline passed before scoring finished (gRPC DEADLINE_EXCEEDED)."""


@dataclass(slots=True)
class RankingHandlerConfig:
    max_in_flight: int = 8
    # a request waits this long for an in-flight slot (bounded by its deadline) before
    # RESOURCE_EXHAUSTED; the reference's enqueue timeout is 1 s
    queue_timeout_s: float = 1.0
    candidate_batch: int = 1024  # candidates scored per forward against the cached history K/V
    cache_ttl_s: float = 10_800.0  # reference Phoenix request-cache TTL
    cache_max_entries: int = 200_000
    bf16: bool = False
    num_threads: int = 0  # 0 = leave torch's setting


@dataclass(slots=True)
class History:
    """A user's engagement history, oldest first (the handler keeps the most recent history_len)."""

    post_ids: np.ndarray
    author_ids: np.ndarray
    action_masks: np.ndarray  # uint64 bit i = ActionName i
    surfaces: np.ndarray
    dwell_ms: np.ndarray

    @classmethod
    def empty(cls) -> History:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z.astype(np.uint64), z, z)


@dataclass(slots=True)
class Candidates:
    post_ids: np.ndarray
    author_ids: np.ndarray
    surfaces: np.ndarray


@dataclass(slots=True)
class _Loaded:
    model: RankerModel
    version: str


def history_fingerprint(user_id: int, h: History, history_len: int) -> bytes:
    """Digest of exactly what the model sees of the user (the most recent history_len items)."""
    d = hashlib.blake2b(digest_size=16)
    d.update(np.int64(user_id).tobytes())
    for a, dt in (
        (h.post_ids, np.int64),
        (h.author_ids, np.int64),
        (h.action_masks, np.uint64),
        (h.surfaces, np.int64),
        (h.dwell_ms, np.int64),
    ):
        d.update(np.ascontiguousarray(np.asarray(a, dtype=dt)[-history_len:]).tobytes())
    return d.digest()


class RankingHandler:
    def __init__(
        self,
        model: RankerModel,
        model_version: str,
        config: RankingHandlerConfig | None = None,
        sids: SidLookup | None = None,
    ) -> None:
        """`sids` hydrates the semantic ids of history and candidate posts by post id (reference:
        the SID lookup service); None = the model gets no SIDs."""
        self.config = config or RankingHandlerConfig()
        self.sids = sids
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        self._loaded = _Loaded(self._prepare(model), model_version)
        MODEL.info({"model_version": model_version})
        self._slots = threading.BoundedSemaphore(self.config.max_in_flight)
        self._reload_lock = threading.Lock()
        self.cache = ScoreCache(self.config.cache_ttl_s, self.config.cache_max_entries)

    @classmethod
    def from_dir(
        cls, model_dir: str | Path, config: RankingHandlerConfig | None = None, sids: SidLookup | None = None
    ) -> RankingHandler:
        model, meta = load_model(model_dir)
        return cls(model, meta["model_version"], config, sids)

    def _prepare(self, model: RankerModel) -> RankerModel:
        model.eval()
        return model.to(torch.bfloat16) if self.config.bf16 else model

    @property
    def model_version(self) -> str:
        return self._loaded.version

    def reload(self, model_dir: str | Path) -> str:
        """Load a checkpoint and swap it in; in-flight requests finish on the model they started with."""
        with self._reload_lock:
            try:
                model, meta = load_model(model_dir)
            except Exception:
                RELOADS.labels("failed").inc()
                raise
            self._loaded = _Loaded(self._prepare(model), meta["model_version"])  # atomic reference swap
            RELOADS.labels("ok").inc()
            MODEL.info({"model_version": meta["model_version"]})
            return meta["model_version"]

    @staticmethod
    def _validate(history: History, cand: Candidates) -> None:
        n = len(history.post_ids)
        if any(
            len(a) != n
            for a in (history.author_ids, history.action_masks, history.surfaces, history.dwell_ms)
        ):
            raise ValueError("history arrays must have equal lengths")
        c = len(cand.post_ids)
        if len(cand.author_ids) != c or len(cand.surfaces) != c:
            raise ValueError("candidate arrays must have equal lengths")
        if c and (np.asarray(cand.post_ids) == 0).any():
            raise ValueError("candidate post_id 0 is reserved for padding")

    def predict(
        self, user_id: int, history: History, candidates: Candidates, deadline: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(probs [C, 64] float32 indexed by ActionName, continuous [C, 8] float32; [:, 1] = dwell s).
        `deadline` is a time.monotonic() value."""
        try:
            self._validate(history, candidates)
        except ValueError:
            REJECTED.labels("invalid").inc()
            raise
        self._admit(deadline)
        IN_FLIGHT.inc()
        t0 = time.perf_counter()
        try:
            CANDIDATES.observe(len(candidates.post_ids))
            return self._predict(user_id, history, candidates, deadline)
        except DeadlineExceededError:
            REJECTED.labels("deadline").inc()
            raise
        finally:
            PREDICT_SECONDS.observe(time.perf_counter() - t0)
            IN_FLIGHT.dec()
            self._slots.release()

    def _admit(self, deadline: float | None) -> None:
        """Take an in-flight slot, waiting up to queue_timeout_s (never past the deadline)."""
        t0 = time.monotonic()
        wait = self.config.queue_timeout_s
        if deadline is not None:
            wait = min(wait, deadline - t0)
        ok = self._slots.acquire(timeout=max(wait, 0.0))
        QUEUE_SECONDS.observe(time.monotonic() - t0)
        if ok:
            return
        if deadline is not None and time.monotonic() >= deadline:
            REJECTED.labels("deadline").inc()
            raise DeadlineExceededError("deadline exceeded waiting for a ranking slot")
        REJECTED.labels("overloaded").inc()
        raise OverloadedError(
            f"{self.config.max_in_flight} ranking requests in flight and no slot freed within "
            f"{self.config.queue_timeout_s:g} s"
        )

    def _predict(
        self, user_id: int, history: History, cand: Candidates, deadline: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        loaded = self._loaded  # one model for the whole request, even if a reload happens meanwhile
        model, cfg = loaded.model, loaded.model.cfg
        c = len(cand.post_ids)
        probs = np.zeros((c, NUM_ACTIONS), dtype=np.float32)
        cont = np.zeros((c, NUM_CONTINUOUS), dtype=np.float32)
        if c == 0:
            return probs, cont
        fp = history_fingerprint(user_id, history, cfg.history_len)
        keys = [
            (loaded.version, fp, int(p), int(a), int(s))
            for p, a, s in zip(cand.post_ids, cand.author_ids, cand.surfaces, strict=True)
        ]
        cached = self.cache.get_many(keys)
        todo = np.array([i for i, v in enumerate(cached) if v is None], dtype=np.int64)
        for i, v in enumerate(cached):
            if v is not None:
                probs[i], cont[i] = v
        if len(todo) == 0:
            return probs, cont
        self._check_deadline(deadline)
        hist = HistoryArrays.single(
            user_id,
            history.post_ids,
            history.author_ids,
            history.action_masks,
            history.surfaces,
            history.dwell_ms,
            cfg.history_len,
        )
        run_compute(self._score, model, hist, cand, todo, probs, cont, deadline)
        self.cache.put_many([keys[i] for i in todo], probs[todo], cont[todo])
        return probs, cont

    def _score(
        self,
        model: RankerModel,
        hist: HistoryArrays,
        cand: Candidates,
        todo: np.ndarray,
        probs: np.ndarray,
        cont: np.ndarray,
        deadline: float | None,
    ) -> None:
        """Fill probs/cont rows `todo`: encode the user/history once, then score the candidates in
        batches against it. Runs on the compute thread (phoenix/compute.py)."""
        cfg = model.cfg
        with torch.inference_mode():
            self._check_deadline(deadline)  # the request may have waited for the compute thread
            ctx_batch = build_batch(
                cfg.hash_config,
                hist,
                CandidateArrays(*(np.zeros((1, 0), np.int64),) * 3),
                self.sids,
                cfg,
            )
            cache = model.encode_context(ctx_batch)
            for s in range(0, len(todo), self.config.candidate_batch):
                self._check_deadline(deadline)
                idx = todo[s : s + self.config.candidate_batch]
                ca = CandidateArrays(
                    np.asarray(cand.post_ids, dtype=np.int64)[idx][None],
                    np.asarray(cand.author_ids, dtype=np.int64)[idx][None],
                    np.asarray(cand.surfaces, dtype=np.int64)[idx][None],
                )
                b = build_batch(cfg.hash_config, hist, ca, self.sids, cfg)
                logits, raw = model.score_candidates(cache, b)
                probs[idx] = torch.sigmoid(logits[0]).numpy()
                cont[idx] = model.continuous_values(raw[0]).numpy()

    @staticmethod
    def _check_deadline(deadline: float | None) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceededError("deadline exceeded while ranking")
