"""Transport-free ranking handler: validation and size limits, deadline-aware admission (bounded
in-flight requests, a short queue, shedding of requests that cannot finish in time:
foryou/core/admission.py), deadlines, a score cache (score_cache.py), hot model reload from a models
root and Prometheus metrics. The gRPC servicer (servicer.py) only converts protos."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import torch
from prometheus_client import Counter, Gauge, Histogram, Info

from foryou.core.admission import Backlog, LinearCost, OverloadedError, ShedError, Ticket
from phoenix.compute import run_compute
from phoenix.device import resolve_device, to_cpu
from phoenix.ranker.checkpoint import load_model
from phoenix.ranker.config import NUM_ACTIONS, NUM_CONTINUOUS
from phoenix.ranker.features import (
    CandidateArrays,
    HistoryArrays,
    build_batch,
    candidate_ages,
    check_surfaces,
)
from phoenix.ranker.model import RankerModel
from phoenix.ranker.model_versions import ModelVersions, UnknownModelVersion
from phoenix.ranker.score_cache import ScoreCache
from phoenix.ranker.sids import SidLookup
from phoenix.registry_layout import registry_root_of
from phoenix.request_limits import load_checkpoint, models_root, resolve_reload_path

__all__ = [  # OverloadedError / ShedError live in foryou.core.admission (shared with retrieval)
    "Candidates",
    "DeadlineExceededError",
    "History",
    "OverloadedError",
    "RankingHandler",
    "RankingHandlerConfig",
    "ShedError",
    "UnknownModelVersion",
]

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


class DeadlineExceededError(RuntimeError):
    """The request's deadline passed before scoring finished (gRPC DEADLINE_EXCEEDED)."""


@dataclass(slots=True)
class RankingHandlerConfig:
    max_in_flight: int = 8
    # a request waits this long for an in-flight slot (bounded by its deadline) before
    # RESOURCE_EXHAUSTED; the reference's enqueue timeout is 1 s. Without a deadline, a request
    # that would find more than this much work ahead of it is refused at once
    queue_timeout_s: float = 1.0
    # requests waiting for an in-flight slot; more are refused at once (bounds threads and memory)
    max_queue: int = 8
    # client-controlled sizes, refused INVALID_ARGUMENT before any work: home_mixer sends up to
    # ~2,200 candidates and the 128-item stored history (the model reads its last history_len)
    max_candidates: int = 4_000
    max_history: int = 512
    # admission (foryou/core/admission.py): a request is accepted only if (work ahead x measured
    # correction + its own estimated cost) x (1 + cost_slack) + deadline_margin_s fits in its
    # remaining deadline. A generous slack costs no throughput (the compute thread stays busy as
    # long as one request waits); it keeps the queue shallow enough that noise does not push
    # accepted requests past their deadlines
    cost_slack: float = 0.5
    deadline_margin_s: float = 0.005
    cost_alpha: float = 0.2  # EWMA weight of each measured request in the per-candidate costs
    # first estimates, until requests are measured: model compute per scored candidate (2,000
    # candidates ≈ 30 ms on the default model, 2 cores) and the rest (cache, protos) per candidate
    initial_compute_per_candidate_s: float = 20e-6
    initial_other_per_candidate_s: float = 10e-6
    # ReloadModel paths must lie inside this directory; "" = the directory holding the checkpoint
    # the handler was started from (from_dir), none at all for a handler built from a model object
    models_root: str = ""
    candidate_batch: int = 1024  # candidates scored per forward against the cached history K/V
    cache_ttl_s: float = 10_800.0  # reference Phoenix request-cache TTL
    cache_max_entries: int = 200_000
    bf16: bool = False
    num_threads: int = 0  # 0 = leave torch's setting
    # registry versions a request may name (PredictRequest.model_version) come from this models
    # root; "" = the registry holding the start-up checkpoint, if it is a registry version folder
    registry_root: str = ""
    max_loaded_versions: int = 3  # requested versions kept loaded besides the served one (LRU)
    # cpu | cuda | cuda:N | auto (phoenix/device.py): where every loaded model runs; request
    # tensors are built on the CPU and moved there, scores come back as CPU numpy arrays
    device: str = "cpu"


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
        # DeviceError (one line) for a CUDA device this machine lacks, before anything is served
        self.device = resolve_device(self.config.device)
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        self._loaded = _Loaded(self._prepare(model), model_version)
        MODEL.info({"model_version": model_version})
        self._slots = threading.BoundedSemaphore(self.config.max_in_flight)
        self._queued = 0  # requests waiting for a slot
        self._queue_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self.cache = ScoreCache(self.config.cache_ttl_s, self.config.cache_max_entries)
        c = self.config
        # all model work runs on one compute thread (phoenix/compute.py): parallelism 1
        self.backlog = Backlog("ranker", 1, c.cost_slack, c.deadline_margin_s, c.cost_alpha)
        # fixed_units 128: the per-request history encoding costs about as much as 128 candidates
        self.compute_cost = LinearCost(
            c.initial_compute_per_candidate_s, 128, c.cost_alpha, "ranker", "compute"
        )
        self.other_cost = LinearCost(c.initial_other_per_candidate_s, 16, c.cost_alpha, "ranker", "other")
        self.models_root = models_root(c.models_root, None)
        self.versions: ModelVersions[_Loaded] = ModelVersions(
            c.registry_root or None, self._load_version, c.max_loaded_versions
        )

    def _load_version(self, path: Path) -> _Loaded:
        model, meta = load_checkpoint(load_model, path, "ranker")
        return _Loaded(self._prepare(model), meta["model_version"])

    def resolve(self, version: str = "") -> _Loaded:
        """The model a request names: "" or the served model's version = the served model, else a
        registry version (loaded on first use, LRU); UnknownModelVersion when it cannot be served."""
        loaded = self._loaded
        if not version or version == loaded.version:
            return loaded
        return self.versions.get(version)

    @classmethod
    def from_dir(
        cls, model_dir: str | Path, config: RankingHandlerConfig | None = None, sids: SidLookup | None = None
    ) -> RankingHandler:
        model, meta = load_model(model_dir)
        h = cls(model, meta["model_version"], config, sids)
        h.models_root = models_root(h.config.models_root, model_dir)
        root = registry_root_of(model_dir)
        if not h.config.registry_root and root is not None:
            h.versions = ModelVersions(root, h._load_version, h.config.max_loaded_versions)
        return h

    def _prepare(self, model: RankerModel) -> RankerModel:
        model.eval().to(self.device)
        return model.to(torch.bfloat16) if self.config.bf16 else model

    @property
    def model_version(self) -> str:
        return self._loaded.version

    def reload(self, model_dir: str | Path) -> str:
        """Load a checkpoint and swap it in; in-flight requests finish on the model they started with.
        Raises PermissionError (outside the models root), FileNotFoundError (no checkpoint there) or
        CheckpointLoadError (one line; unloadable); the current model keeps serving."""
        with self._reload_lock:
            try:
                path = resolve_reload_path(model_dir, self.models_root)
                model, meta = load_checkpoint(load_model, path, "ranker")
            except Exception:
                RELOADS.labels("failed").inc()
                raise
            self._loaded = _Loaded(self._prepare(model), meta["model_version"])  # atomic reference swap
            RELOADS.labels("ok").inc()
            MODEL.info({"model_version": meta["model_version"]})
            return meta["model_version"]

    def check_sizes(self, n_history: int, n_candidates: int) -> None:
        """Refuse (ValueError -> INVALID_ARGUMENT) a request over the configured sizes; called on
        the counts alone, before anything is converted or allocated."""
        c = self.config
        if n_candidates > c.max_candidates:
            REJECTED.labels("too_large").inc()
            raise ValueError(
                f"{n_candidates:,} candidates; at most {c.max_candidates:,} per request (split the request)"
            )
        if n_history > c.max_history:
            REJECTED.labels("too_large").inc()
            raise ValueError(
                f"action_sequence has {n_history:,} items; at most {c.max_history:,} "
                "(the model reads the most recent history items only)"
            )

    def validate(self, history: History, cand: Candidates) -> None:
        """ValueError (-> INVALID_ARGUMENT) for a request the model cannot score."""
        self.check_sizes(len(history.post_ids), len(cand.post_ids))
        try:
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
            check_surfaces(cand.surfaces, "candidate")
            check_surfaces(history.surfaces, "action_sequence item")
        except ValueError:
            REJECTED.labels("invalid").inc()
            raise

    def predict(
        self,
        user_id: int,
        history: History,
        candidates: Candidates,
        deadline: float | None = None,
        model_version: str = "",
        now_ms: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(probs [C, 64] float32 indexed by ActionName, continuous [C, 8] float32; [:, 1] = dwell s).
        `deadline` is a time.monotonic() value; `model_version` a registry version ("" = the served
        model); `now_ms` the request time candidates are aged at (None = the wall clock; batch
        scoring of a past log passes its own). Raises ValueError (bad or oversized input),
        UnknownModelVersion, ShedError (cannot finish before the deadline), OverloadedError (no
        slot in time), DeadlineExceededError."""
        self.validate(history, candidates)
        loaded = self.resolve(model_version)
        with self.admitted(len(candidates.post_ids), deadline) as ticket:
            return self.predict_admitted(user_id, history, candidates, deadline, ticket, loaded, now_ms)

    @contextmanager
    def admitted(self, n_candidates: int, deadline: float | None) -> Iterator[Ticket]:
        """Admission for one request of `n_candidates`: shed at once when its estimated cost plus
        the work ahead does not fit before its deadline, else take an in-flight slot (waiting at
        most queue_timeout_s, never past the point where it could still finish). Work inside the
        block (scoring, and the servicer's response building) is measured to keep the per-candidate
        cost estimates current."""
        ticket = self._admit(n_candidates, deadline)
        IN_FLIGHT.inc()
        CANDIDATES.observe(n_candidates)
        t0 = time.perf_counter()
        ok = False
        try:
            yield ticket
            ok = True
        except DeadlineExceededError:
            REJECTED.labels("deadline").inc()
            raise
        finally:
            elapsed = time.perf_counter() - t0
            PREDICT_SECONDS.observe(elapsed)
            IN_FLIGHT.dec()
            self.backlog.finish(ticket, completed=ok)
            self._slots.release()
            self._learn(ticket, n_candidates, elapsed, ok)

    def _learn(self, ticket: Ticket, n: int, elapsed: float, ok: bool) -> None:
        self.compute_cost.observe_run(ticket, ok)
        if ok:
            # everything but the model work and the wait for the compute thread
            other = elapsed - ticket.serial_wait_s - (ticket.serial_run_s or 0.0)
            self.other_cost.observe(max(other, 0.0), n)

    def _admit(self, n: int, deadline: float | None) -> Ticket:
        t0 = time.monotonic()
        if deadline is not None and t0 >= deadline:
            REJECTED.labels("deadline").inc()
            raise DeadlineExceededError("deadline exceeded before ranking started")
        serial = self.compute_cost.estimate(n)  # as if nothing were cached: conservative
        own = serial + self.other_cost.estimate(n)
        try:
            ticket = self.backlog.admit(own, serial, deadline, self.config.queue_timeout_s)
        except ShedError:
            REJECTED.labels("shed").inc()
            raise
        try:
            self._take_slot(ticket, deadline)
        except BaseException:
            self.backlog.finish(ticket)
            raise
        finally:
            QUEUE_SECONDS.observe(time.monotonic() - t0)
        return ticket

    def _take_slot(self, ticket: Ticket, deadline: float | None) -> None:
        """An in-flight slot, waiting up to queue_timeout_s and only as long as the request could
        still finish before its deadline afterwards."""
        if self._slots.acquire(blocking=False):
            return
        with self._queue_lock:
            if self._queued >= self.config.max_queue:
                REJECTED.labels("overloaded").inc()
                raise OverloadedError(
                    f"{self.config.max_in_flight} ranking requests in flight and "
                    f"{self._queued} queued; try another replica"
                )
            self._queued += 1
        try:
            wait = self.config.queue_timeout_s
            if deadline is not None:
                # the latest start that still leaves time for its own work
                wait = min(wait, deadline - time.monotonic() - self.backlog.needed_s(0.0, ticket.own_s))
            if self._slots.acquire(timeout=max(wait, 0.0)):
                return
        finally:
            with self._queue_lock:
                self._queued -= 1
        if deadline is not None and wait < self.config.queue_timeout_s:
            REJECTED.labels("shed").inc()
            raise ShedError(
                "no ranking slot freed in time to finish before the deadline "
                f"({self.config.max_in_flight} in flight)"
            )
        REJECTED.labels("overloaded").inc()
        raise OverloadedError(
            f"{self.config.max_in_flight} ranking requests in flight and no slot freed within "
            f"{self.config.queue_timeout_s:g} s"
        )

    def predict_admitted(
        self,
        user_id: int,
        history: History,
        cand: Candidates,
        deadline: float | None,
        ticket: Ticket | None = None,
        loaded: _Loaded | None = None,
        request_ms: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`predict` for a validated request inside `admitted` (whose ticket records the compute
        time for the cost estimates); `loaded`: the model to score with (`resolve`), default the
        served one; `request_ms`: the time candidates are aged at (None = the wall clock)."""
        # one model for the whole request, even if a reload happens meanwhile
        loaded = loaded if loaded is not None else self._loaded
        model, cfg = loaded.model, loaded.model.cfg
        c = len(cand.post_ids)
        probs = np.zeros((c, NUM_ACTIONS), dtype=np.float32)
        cont = np.zeros((c, NUM_CONTINUOUS), dtype=np.float32)
        if c == 0:
            return probs, cont
        fp = history_fingerprint(user_id, history, cfg.history_len)
        # a model with the age feature scores each candidate at its age now (from the snowflake id);
        # the age bucket is part of the cache key, so a cached score never outlives its bucket
        now_ms = None
        if cfg.age_buckets:
            now_ms = int(time.time() * 1000) if request_ms is None else request_ms
        ages = candidate_ages(cand.post_ids, now_ms) if now_ms is not None else np.zeros(c, np.int64)
        ids = (np.asarray(a).tolist() for a in (cand.post_ids, cand.author_ids, cand.surfaces, ages))
        keys = list(zip(repeat(loaded.version), repeat(fp), *ids, strict=False))  # lengths validated
        todo = self.cache.lookup(keys, probs, cont)  # fills the cached rows
        if len(todo) == 0:
            return probs, cont
        self._check_deadline(deadline)
        if ticket is not None:
            ticket.work_units = len(todo)
            ticket.submit()
        hist = HistoryArrays.single(
            user_id,
            history.post_ids,
            history.author_ids,
            history.action_masks,
            history.surfaces,
            history.dwell_ms,
            cfg.history_len,
        )
        run_compute(self._score, model, hist, cand, todo, probs, cont, deadline, ticket, now_ms)
        self.cache.put_many([keys[i] for i in todo.tolist()], probs[todo], cont[todo])
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
        ticket: Ticket | None = None,
        now_ms: int | None = None,
    ) -> None:
        """Fill probs/cont rows `todo`: encode the user/history once, then score the candidates in
        batches against it (aged at `now_ms`, None = ages unknown). Runs on the compute thread
        (phoenix/compute.py); the ticket times the run for the cost estimates."""
        if ticket is not None:
            ticket.start()
        cfg, step = model.cfg, self.config.candidate_batch
        empty = CandidateArrays(*(np.zeros((1, 0), np.int64),) * 3)
        try:
            self._check_deadline(deadline)  # the request may have waited for the compute thread
            with torch.inference_mode():
                context = build_batch(cfg.hash_config, hist, empty, self.sids, cfg).to(self.device)
                cache = model.encode_context(context)
                for s in range(0, len(todo), step):
                    self._check_deadline(deadline)
                    idx = todo[s : s + step]
                    ca = CandidateArrays(
                        np.asarray(cand.post_ids, dtype=np.int64)[idx][None],
                        np.asarray(cand.author_ids, dtype=np.int64)[idx][None],
                        np.asarray(cand.surfaces, dtype=np.int64)[idx][None],
                    )
                    b = build_batch(cfg.hash_config, hist, ca, self.sids, cfg, now_ms).to(self.device)
                    logits, raw = model.score_candidates(cache, b)
                    probs[idx] = to_cpu(torch.sigmoid(logits[0]))
                    cont[idx] = to_cpu(model.continuous_values(raw[0]))
        finally:
            if ticket is not None:
                ticket.finish()

    @staticmethod
    def _check_deadline(deadline: float | None) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceededError("deadline exceeded while ranking")
