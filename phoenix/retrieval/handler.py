"""Transport-free retrieval: user tower over the user's history (given, or read from Redis), then
top-k inner-product search of the live post index, excluding the user's own posts and given ids.

Index updates (the live `posts` consumer) and model reloads go through one update lock; a reload
embeds every current post with the new candidate tower into a fresh index and swaps it in
atomically, so searches never see a gap (they keep using the old index until the swap).

Client-controlled sizes (history, exclusions, top_k) are bounded and checked on the request's
counts before anything is converted; admission (`admit` / `release`, foryou/core/admission.py) sheds
a request that cannot finish before its deadline given the retrievals already accepted."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis
import torch
from prometheus_client import Counter, Histogram

from foryou.core import user_state
from foryou.core.admission import Backlog, LinearCost, ShedError, Ticket
from phoenix.device import faiss_gpu_for, resolve_device
from phoenix.ranker.features import CandidateArrays, HistoryArrays, build_batch, check_surfaces
from phoenix.ranker.sids import SidLookup
from phoenix.request_limits import load_checkpoint, models_root, resolve_reload_path
from phoenix.retrieval.index import IndexConfig, PostIndex, read_snapshot_meta
from phoenix.retrieval.model import TwoTowerModel, load_two_tower
from protos import phoenix_pb2

log = logging.getLogger(__name__)

REDIS_ERRORS = Counter("phoenix_retrieval_history_read_errors", "History reads from Redis that failed")
DEADLINE_EXCEEDED = Counter(
    "phoenix_retrieval_deadline_exceeded", "Retrieve calls abandoned because the deadline passed"
)
REJECTED = Counter("phoenix_retrieval_rejected_total", "Retrieve calls refused", ["reason"])
RETRIEVE_SECONDS = Histogram(
    "phoenix_retrieval_retrieve_seconds",
    "Retrieve latency (user tower + search)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


@dataclass(slots=True)
class RetrievalHandlerConfig:
    default_top_k: int = 1_000
    max_top_k: int = 10_000
    # client-controlled sizes, refused INVALID_ARGUMENT before any work: home_mixer sends the
    # 128-item stored history (the user tower reads its last history_len) and up to 5,000 seen ids
    max_history: int = 512
    max_exclusions: int = 10_000
    embed_batch_size: int = 8_192
    index: IndexConfig = field(default_factory=IndexConfig)
    # retrievals running at once (the gRPC servicer's worker threads); the rest wait their turn
    max_in_flight: int = 4
    # without a deadline, a request that would find more than this much work ahead is refused
    queue_timeout_s: float = 1.0
    # admission (foryou/core/admission.py): accepted only if (work ahead x measured correction + own
    # estimated cost) x (1 + cost_slack) + deadline_margin_s fits in the remaining deadline (see
    # RankingHandlerConfig: the slack costs no throughput)
    cost_slack: float = 0.5
    deadline_margin_s: float = 0.005
    cost_alpha: float = 0.2  # EWMA weight of each measured request
    # first estimate until requests are measured: seconds for a default request (top_k 1,000)
    initial_request_s: float = 0.01
    # ReloadModel paths must lie inside this directory; "" = the directory holding the checkpoint
    # the handler was started from (from_dir), none at all for a handler built from a model object
    models_root: str = ""
    # cpu | cuda | cuda:N | auto (phoenix/device.py): where the towers run (request tensors are
    # moved there, vectors come back as CPU numpy); on CUDA with a FAISS built with GPUs the exact
    # (flat) index searches on that GPU too, else the index stays on the CPU
    device: str = "cpu"


# a request's size for the cost estimate: top_k + exclusions (the search over-fetches by the
# exclusions), plus this many units for the user tower and the fixed search work
_FIXED_UNITS = 1_000


class RetrievalHandler:
    def __init__(
        self,
        model: TwoTowerModel,
        model_version: str,
        redis_client: redis.Redis | None = None,
        redis_prefix: str = user_state.DEFAULT_PREFIX,
        config: RetrievalHandlerConfig | None = None,
        sids: SidLookup | None = None,
    ) -> None:
        """`sids`: post id -> semantic id lookup for indexed and history posts (None = ids only)."""
        self.config = config or RetrievalHandlerConfig()
        self.sids = sids
        # DeviceError (one line) for a CUDA device this machine lacks, before anything is served
        self.device = resolve_device(self.config.device)
        self.index_gpu = faiss_gpu_for(self.device)  # None: a CPU FAISS index
        self.sids_fingerprint = sids.fingerprint() if sids is not None else ""
        self.redis = redis_client
        self.redis_prefix = redis_prefix
        # (model, version, index) swapped as one tuple: a search sees the old or the new triple
        self._state: tuple[TwoTowerModel, str, PostIndex] = (
            model.eval().to(self.device),
            model_version,
            PostIndex(model.cfg.dim, self.config.index, gpu=self.index_gpu),
        )
        self._update_lock = threading.Lock()
        c = self.config
        self.backlog = Backlog("retrieval", c.max_in_flight, c.cost_slack, c.deadline_margin_s, c.cost_alpha)
        self.cost = LinearCost(
            c.initial_request_s / (c.default_top_k + _FIXED_UNITS),
            _FIXED_UNITS,
            c.cost_alpha,
            "retrieval",
            "request",
        )
        self.models_root = models_root(c.models_root, None)
        # set by the service's StallWatch while the index updater cannot ingest: answers still
        # come from the index, flagged so that home_mixer marks the feed degraded
        self.stale = False

    @classmethod
    def from_dir(cls, model_dir: str | Path, **kw: Any) -> RetrievalHandler:
        model, meta = load_two_tower(model_dir)
        h = cls(model, str(meta["model_version"]), **kw)
        h.models_root = models_root(h.config.models_root, model_dir)
        return h

    @property
    def model_version(self) -> str:
        return self._state[1]

    @property
    def index(self) -> PostIndex:
        return self._state[2]

    # --- index maintenance (called by the live updater) ---

    def add_posts(self, post_ids: np.ndarray, author_ids: np.ndarray) -> int:
        post_ids, author_ids = np.asarray(post_ids, np.int64), np.asarray(author_ids, np.int64)
        with self._update_lock:
            model, _, index = self._state
            new = np.array([p not in index for p in post_ids.tolist()], dtype=bool)
            if not new.any():
                return 0
            vecs = model.embed_posts(post_ids[new], author_ids[new], self.config.embed_batch_size, self.sids)
            return index.add(post_ids[new], author_ids[new], vecs)

    def remove_posts(self, post_ids: Any) -> int:
        with self._update_lock:
            return self._state[2].remove(post_ids)

    def evict(self, now_ms: int | None = None) -> int:
        with self._update_lock:
            return self._state[2].evict(int(time.time() * 1000) if now_ms is None else now_ms)

    def reload(self, model_dir: str | Path) -> str:
        """Load a new checkpoint, re-embed every indexed post, swap model and index together.
        Raises PermissionError (outside the models root), FileNotFoundError (no checkpoint there) or
        CheckpointLoadError (one line; unloadable); the current model keeps serving."""
        path = resolve_reload_path(model_dir, self.models_root)
        model, meta = load_checkpoint(load_two_tower, path, "retrieval")
        model = model.eval().to(self.device)
        with self._update_lock:
            posts, authors = self._state[2].live_posts()
            fresh = PostIndex(model.cfg.dim, self.config.index, capacity_hint=len(posts), gpu=self.index_gpu)
            if len(posts):
                vecs = model.embed_posts(posts, authors, self.config.embed_batch_size, self.sids)
                fresh.add(posts, authors, vecs)
            self._state = (model, str(meta["model_version"]), fresh)
        log.info("retrieval model reloaded", extra={"model_version": self.model_version, "posts": len(posts)})
        return self.model_version

    def retain_only(self, post_ids: np.ndarray) -> int:
        """Removes every indexed post not in `post_ids` (after a snapshot + replay: posts the topic
        no longer has). Returns the number removed."""
        with self._update_lock:
            index = self._state[2]
            live, _ = index.live_posts()
            stale = live[~np.isin(live, np.asarray(post_ids, np.int64))]
            return index.remove(stale) if len(stale) else 0

    # --- snapshots ---

    def save_snapshot(self, directory: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Writes the current index with the model version it was embedded with. Searches go on
        meanwhile; index updates wait."""
        t0 = time.perf_counter()
        # the update lock holds off every mutation, so searches need not wait for the copy
        with self._update_lock:
            _, version, index = self._state
            meta = {
                "model_version": version,
                "sids": self.sids_fingerprint,
                "saved_at_ms": int(time.time() * 1000),
                **(extra or {}),
            }
            nbytes = index.save(directory, meta, exclusive=False)
        out = {"posts": len(index), "bytes": nbytes, "seconds": round(time.perf_counter() - t0, 3)}
        log.info("retrieval index snapshot written", extra={"path": str(directory), **out})
        return out

    def load_snapshot(self, directory: str | Path) -> bool:
        """Replaces the index with a snapshot embedded by the current model version and SID lookup.
        False (index unchanged) when there is none, it belongs to another model version or lookup,
        or it is unreadable."""
        try:
            meta = read_snapshot_meta(directory)
        except FileNotFoundError:
            return False
        except ValueError as e:
            log.warning("unreadable index snapshot ignored", extra={"path": str(directory), "error": str(e)})
            return False
        if meta.get("model_version") != self.model_version:
            log.info(
                "index snapshot is for another model version; rebuilding from the topic",
                extra={
                    "path": str(directory),
                    "snapshot": meta.get("model_version"),
                    "model": self.model_version,
                },
            )
            return False
        if meta.get("sids", "") != self.sids_fingerprint:
            log.info(
                "index snapshot was embedded with other semantic ids; rebuilding from the topic",
                extra={"path": str(directory)},
            )
            return False
        try:
            index = PostIndex.load(directory, self.config.index, gpu=self.index_gpu)
        except (OSError, ValueError, RuntimeError) as e:
            log.warning("unreadable index snapshot ignored", extra={"path": str(directory), "error": str(e)})
            return False
        with self._update_lock:
            model, version, _ = self._state
            if version != meta["model_version"]:  # a reload raced the load
                return False
            self._state = (model, version, index)
        log.info("retrieval index loaded from snapshot", extra={"path": str(directory), "posts": len(index)})
        return True

    # --- serving ---

    def read_history(self, user_id: int) -> np.ndarray:
        """The user's action sequence from Redis; empty (and counted) when Redis is unavailable."""
        if self.redis is None:
            return user_state.empty_sequence()
        try:
            return user_state.read_action_sequence(self.redis, user_id, self.redis_prefix)
        except (redis.RedisError, ValueError) as e:
            REDIS_ERRORS.inc()
            log.warning("history read failed; retrieving without history", extra={"error": str(e)})
            return user_state.empty_sequence()

    def user_vector(self, model: TwoTowerModel, user_id: int, history: np.ndarray) -> np.ndarray:
        h = HistoryArrays.single(
            user_id,
            history["post_id"],
            history["author_id"],
            history["action_mask"],
            history["product_surface"],
            history["dwell_ms"],
            model.cfg.trunk.history_len,
        )
        empty = CandidateArrays(*(np.zeros((1, 1), np.int64) for _ in range(3)))
        with torch.no_grad():
            b = build_batch(model.cfg.hash_config, h, empty, self.sids, model.cfg.trunk)
            return model.user_embed(b.to(self.device))[0].cpu().numpy()

    def check_sizes(self, n_history: int, n_exclusions: int, top_k: int) -> None:
        """ValueError (-> INVALID_ARGUMENT) for sizes over the limits, from the counts alone."""
        c = self.config
        for n, most, what in (
            (top_k, c.max_top_k, "top_k"),
            (n_history, c.max_history, "action_sequence items"),
            (n_exclusions, c.max_exclusions, "exclude_post_ids"),
        ):
            if n > most:
                REJECTED.labels("too_large").inc()
                raise ValueError(f"{what}: {n:,} exceeds the maximum {most:,}")

    def check_request(self, request: phoenix_pb2.RetrieveRequest) -> None:
        n_hist = len(request.action_sequence.items) if request.HasField("action_sequence") else 0
        self.check_sizes(n_hist, len(request.exclude_post_ids), request.top_k)

    def request_units(self, request: phoenix_pb2.RetrieveRequest) -> int:
        return (request.top_k or self.config.default_top_k) + len(request.exclude_post_ids)

    def admit(self, units: int, deadline: float | None) -> Ticket:
        """Accept a request of `units` (`request_units`) or raise ShedError (it cannot finish
        before its deadline behind the retrievals already accepted) / TimeoutError (deadline
        already passed). Every accepted ticket must be passed to `release`."""
        if deadline is not None and time.monotonic() >= deadline:
            DEADLINE_EXCEEDED.inc()
            raise TimeoutError("deadline exceeded before retrieval started")
        own = self.cost.estimate(units)
        try:
            ticket = self.backlog.admit(own, own, deadline, self.config.queue_timeout_s)
        except ShedError:
            REJECTED.labels("shed").inc()
            raise
        ticket.work_units = units
        return ticket

    def release(self, ticket: Ticket, ok: bool) -> None:
        """The request is done (or abandoned): it leaves the backlog; its run time updates the
        cost estimate (a failed run only as a lower bound)."""
        self.backlog.finish(ticket, completed=ok)
        self.cost.observe_run(ticket, ok)

    def retrieve(
        self,
        user_id: int,
        history: np.ndarray | None = None,
        top_k: int | None = None,
        exclude_post_ids: Any = (),
        deadline: float | None = None,
    ) -> list[tuple[int, int, float]]:
        """(post_id, author_id, score), best first. `history`: SEQ_DTYPE array (oldest first) or
        None to read it from Redis. `deadline` (time.monotonic()) is checked before each stage:
        past it, TimeoutError is raised instead of doing work nobody waits for. Raises ValueError
        on bad input."""
        return self._retrieve(user_id, history, top_k, exclude_post_ids, deadline)[0]

    def _retrieve(
        self,
        user_id: int,
        history: np.ndarray | None,
        top_k: int | None,
        exclude_post_ids: Any,
        deadline: float | None,
    ) -> tuple[list[tuple[int, int, float]], str]:
        """`retrieve` and the model version that produced the answer (read with the index, so a
        reload in between cannot mislabel it)."""
        if user_id <= 0:
            raise ValueError("user_id must be positive")
        k = top_k or self.config.default_top_k
        self.check_sizes(0 if history is None else len(history), len(exclude_post_ids), k)
        if history is not None and len(history) and (history["post_id"] <= 0).any():
            bad = int(np.flatnonzero(history["post_id"] <= 0)[0])
            raise ValueError(f"action_sequence item {bad}: post_id must be positive")
        if history is not None and len(history):
            check_surfaces(history["product_surface"], "action_sequence item")
        t0 = time.perf_counter()
        model, version, index = self._state
        _check_deadline(deadline, "before reading the history")
        seq = self.read_history(user_id) if history is None else history
        _check_deadline(deadline, "before the user tower")
        q = self.user_vector(model, user_id, seq)
        _check_deadline(deadline, "before the index search")
        out = index.search(q, k, exclude_post_ids=exclude_post_ids, exclude_author_id=user_id)
        RETRIEVE_SECONDS.observe(time.perf_counter() - t0)
        return out, version

    def handle(
        self,
        request: phoenix_pb2.RetrieveRequest,
        deadline: float | None = None,
        ticket: Ticket | None = None,
    ) -> phoenix_pb2.RetrieveResponse:
        """Proto in, proto out (the in-process client and the servicer both use this). With the
        `ticket` of an admitted request, its run is timed and the ticket released at the end."""
        ok = False
        if ticket is not None:
            ticket.start()
        try:
            self.check_request(request)  # counts before converting anything
            history = (
                user_state.action_sequence_from_proto(request.action_sequence)
                if request.HasField("action_sequence")
                else None
            )
            res, model_version = self._retrieve(
                request.user_id, history, request.top_k or None, request.exclude_post_ids, deadline
            )
            resp = phoenix_pb2.RetrieveResponse(
                candidates=[
                    phoenix_pb2.RetrievedCandidate(post_id=p, author_id=a, score=s) for p, a, s in res
                ],
                model_version=model_version,
                stale=self.stale,
            )
            ok = True
            return resp
        finally:
            if ticket is not None:
                ticket.finish()
                self.release(ticket, ok)


def _check_deadline(deadline: float | None, stage: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        DEADLINE_EXCEEDED.inc()
        raise TimeoutError(f"deadline exceeded {stage}")
