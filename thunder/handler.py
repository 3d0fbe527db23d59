"""Transport-free GetInNetworkPosts: validation, limits, admission and the store query."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from foryou.core.admission import AsyncAdmission
from protos import thunder_pb2 as pb
from thunder import metrics
from thunder.config import MAX_POSTS_TO_RETURN, MAX_VIDEOS_TO_RETURN, ThunderConfig
from thunder.response_encoder import encode_response
from thunder.store import HAS_VIDEO, IS_REPLY, IS_RETWEET, PostStore, QueryResult
from thunder.store.records import REF_ID_FIELDS

log = logging.getLogger(__name__)
ALGORITHMS = {"", "recent", "default", "latest"}


class InvalidRequest(ValueError):
    """Answered as INVALID_ARGUMENT."""


class RateLimited(RuntimeError):
    """Answered as RESOURCE_EXHAUSTED."""


class TokenBucket:
    """Admission at `rate` requests/s with bursts up to `burst` (the reference's per-instance QPS
    limit). Non-blocking: a request that finds no token is refused, never queued."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._t = time.monotonic()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        if self.rate <= 0:
            return True
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
            self._t = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


@dataclass(slots=True)
class InNetworkPostsHandler:
    store: PostStore
    config: ThunderConfig
    limiter: TokenBucket = field(init=False)
    admission: AsyncAdmission = field(init=False)
    # set by the service's StallWatch while the posts consumer cannot ingest: answers still come
    # from the store, flagged so that home_mixer marks the feed degraded
    stale: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.limiter = TokenBucket(self.config.qps_limit)
        self.admission = AsyncAdmission("thunder", self.config.admission)

    def validate(self, req: pb.GetInNetworkPostsRequest) -> None:
        if req.user_id <= 0:
            raise InvalidRequest("user_id must be a positive id")
        limit = self.config.max_input_list_size
        if len(req.following_user_ids) > limit:
            raise InvalidRequest(f"following_user_ids has {len(req.following_user_ids)} ids; at most {limit}")
        if len(req.exclude_post_ids) > limit:
            raise InvalidRequest(f"exclude_post_ids has {len(req.exclude_post_ids)} ids; at most {limit}")
        for name in ("following_user_ids", "exclude_post_ids"):
            ids = getattr(req, name)
            if ids and min(ids) <= 0:
                raise InvalidRequest(f"{name} must hold positive ids, got {min(ids)}")
        if req.algorithm not in ALGORITHMS:
            known = ", ".join(repr(a) for a in sorted(ALGORITHMS))
            raise InvalidRequest(f"unknown algorithm {req.algorithm!r}; one of {known}")

    async def serve(
        self, req: pb.GetInNetworkPostsRequest, deadline: float | None
    ) -> pb.GetInNetworkPostsResponse:
        """What the gRPC servicer runs: validation (InvalidRequest), then deadline-aware admission
        (`deadline`: time.monotonic(), None = none; ShedError when the request cannot finish in
        time behind the ones accepted), then `get_in_network_posts` in its turn."""
        try:
            self.validate(req)
        except InvalidRequest as e:
            log.warning("INVALID_ARGUMENT user_id=%d: %s", req.user_id, e)
            raise
        units = len(req.following_user_ids)  # the store scans each followed author's posts
        # on the admission's worker thread: the event loop stays free to take in (and shed) calls
        return await self.admission.call(deadline, units, self.get_in_network_posts, req)

    def get_in_network_posts(self, req: pb.GetInNetworkPostsRequest) -> pb.GetInNetworkPostsResponse:
        """Admission (QPS limit), then `handle`; what in-process callers (home_mixer) use."""
        if not self.limiter.try_acquire():
            metrics.REJECTED.labels("qps").inc()
            raise RateLimited(f"over the {self.config.qps_limit:g} requests/s limit")
        metrics.IN_FLIGHT.inc()
        try:
            return self.handle(req)
        finally:
            metrics.IN_FLIGHT.dec()

    def handle(self, req: pb.GetInNetworkPostsRequest) -> pb.GetInNetworkPostsResponse:
        t0 = time.perf_counter()
        self.validate(req)
        default_max = MAX_VIDEOS_TO_RETURN if req.is_video_request else MAX_POSTS_TO_RETURN
        max_results = req.max_results or default_max
        limits = req.per_author_limits if req.HasField("per_author_limits") else None
        res = self.store.get_posts(
            req.user_id,
            list(req.following_user_ids),
            list(req.exclude_post_ids),
            max_results=max_results,
            is_video=req.is_video_request,
            max_originals=limits.max_posts_per_author
            if limits and limits.HasField("max_posts_per_author")
            else None,
            max_replies=(
                limits.max_replies_reposts_per_author
                if limits and limits.HasField("max_replies_reposts_per_author")
                else None
            ),
        )
        # wire bytes written with numpy and parsed once: ~0.45 ms for 1,200 posts, against ~1.4 ms
        # for building the LightPosts one by one (`to_light_posts`, kept as the reference)
        out = pb.GetInNetworkPostsResponse.FromString(encode_response(res.columns))
        if self.stale:
            out.stale = True
        metrics.RETURNED.observe(len(out.posts))
        metrics.REQUEST_SECONDS.observe(time.perf_counter() - t0)
        return out


def to_light_posts(res: QueryResult) -> list[pb.LightPost]:
    c = {k: v.tolist() for k, v in res.columns.items()}
    out = []
    for i in range(len(res)):
        f = c["flags"][i]
        lp = pb.LightPost(
            post_id=c["post_id"][i],
            author_id=c["author_id"][i],
            created_at=c["created_at"][i],
            is_retweet=bool(f & IS_RETWEET),
            is_reply=bool(f & IS_REPLY),
            has_video=bool(f & HAS_VIDEO),
        )
        # optional ids: 0 means absent (as the reference CompactPost)
        for name in REF_ID_FIELDS:
            if c[name][i]:
                setattr(lp, name, c[name][i])
        out.append(lp)
    return out
