"""The scored-posts query: request fields, validation, and what the query hydrators fill in."""

from __future__ import annotations

import hashlib
import heapq
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from foryou.core.snowflake import TIMESTAMP_SHIFT, timestamp_ms
from home_mixer.params import DEFAULT_LIMITS, DEFAULT_PARAMS, Params, RequestLimits
from protos import home_mixer_pb2, phoenix_pb2

if TYPE_CHECKING:
    from home_mixer.candidate import PostCandidate
    from home_mixer.post_lookup import PostLookup

log = logging.getLogger(__name__)

MAX_ID = (1 << 63) - 1  # ids are positive int64


class InvalidQuery(ValueError):
    """A request the service must answer with INVALID_ARGUMENT."""


@dataclass(slots=True)
class UserFeatures:
    following: frozenset[int] = frozenset()
    blocked: frozenset[int] = frozenset()
    muted: frozenset[int] = frozenset()
    subscriptions: frozenset[int] = frozenset()
    muted_keywords: tuple[str, ...] = ()
    viewer_followers_count: int | None = None  # None = unknown (the VQV viewer gate then passes)
    # False until UserFeaturesQueryHydrator succeeded: empty sets then mean "unknown", not "none",
    # and the safety filters fail closed on them
    available: bool = True


def _missing_user_features() -> UserFeatures:
    return UserFeatures(available=False)


@dataclass(slots=True)
class ScoredPostsQuery:
    viewer_id: int
    seen_ids: frozenset[int] = frozenset()
    served_ids: frozenset[int] = frozenset()
    in_network_only: bool = False
    is_bottom_request: bool = False
    client_app_id: int = 0
    country_code: str = ""
    language_code: str = ""
    params: Params = DEFAULT_PARAMS
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    now_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    # filled by query hydrators
    action_sequence: phoenix_pb2.ActionSequence | None = None
    action_sequence_loaded: bool = False  # the history read succeeded (None above = no history)
    user_features: UserFeatures = field(default_factory=_missing_user_features)
    # per-request shared state
    post_lookup: PostLookup | None = None
    model_version: str = ""
    # the viewer's experiment buckets ("<experiment>:<bucket>,…"; home_mixer.experiments) and the
    # ranker version they pin ("" = the ranker's promoted version)
    experiment_bucket: str = ""
    ranker_version: str = ""
    # also score the selected posts with this ranker version (shadow scoring: logged, not served)
    shadow_ranker_version: str = ""
    # "<Filter>: <reason>" -> candidates a safety filter removed because it could not clear them
    fail_closed: dict[str, int] = field(default_factory=dict)
    # set when a value-model step (diversity, OON, DPP) failed: the request is then served on the
    # local score (weighted + cold start) without them; "<Component>: <error>"
    value_model_failed: str | None = None
    # seed of this request's random draws (cold-start Thompson sampling); None = from request_id
    rng_seed: int | None = None
    # video carousel: eligible = no carousel in the last VideoCarouselFatigueMinutes (the reference's
    # blending pipeline decides; nothing here tracks it, so every request is eligible); the module
    # VideoCarouselFilter chose, in module order (the pipeline lists it after the feed)
    video_carousel_eligible: bool = True
    video_carousel: list[PostCandidate] = field(default_factory=list)

    def random_seed(self) -> int:
        """The request's seed: `rng_seed`, else derived from the request id (a replayed request with
        the same id draws the same numbers)."""
        if self.rng_seed is not None:
            return self.rng_seed
        digest = hashlib.blake2b(self.request_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")

    # "<dependency>_stale": a source answered from state it could not refresh (its consumer stalled)
    stale: set[str] = field(default_factory=set)

    @classmethod
    def from_request(
        cls,
        req: home_mixer_pb2.GetScoredPostsRequest,
        params: Params = DEFAULT_PARAMS,
        limits: RequestLimits = DEFAULT_LIMITS,
        **kw: object,
    ) -> ScoredPostsQuery:
        validate_request(req, limits)
        q = cls(
            viewer_id=req.viewer_id,
            seen_ids=newest_ids(req.seen_ids, limits.max_seen_ids, "seen_ids"),
            served_ids=newest_ids(req.served_ids, limits.max_seen_ids, "served_ids"),
            in_network_only=req.in_network_only,
            is_bottom_request=req.is_bottom_request,
            client_app_id=req.client_app_id,
            country_code=req.country_code,
            language_code=req.language_code,
            params=params,
        )
        for k, v in kw.items():
            setattr(q, k, v)
        q.request_id = f"{q.request_id}-{q.viewer_id}"  # reference: "<generated id>-<user_id>"
        return q

    def record_fail_closed(self, component: str, reason: str, removed: Sequence[PostCandidate]) -> None:
        """A safety filter removed `removed` because its data was missing: the reason goes on each
        candidate (debug view) and into the response's `degraded` list."""
        if not removed:
            return
        for c in removed:
            c.removal_reason = reason
        key = f"{component}: {reason}"
        self.fail_closed[key] = self.fail_closed.get(key, 0) + len(removed)


def viewer_account_age_s(query: ScoredPostsQuery) -> float | None:
    """The viewer's account age from a snowflake user id; None when the id is not a snowflake (a
    sequential id, like the synthetic world's: no creation time in it)."""
    if query.viewer_id >> TIMESTAMP_SHIFT == 0:
        return None
    return (query.now_ms - timestamp_ms(query.viewer_id)) / 1000


def newest_ids(ids: Sequence[int], limit: int, name: str) -> frozenset[int]:
    """The ids as a set; over `limit` distinct ids, only the newest (largest snowflake) `limit` are
    kept: a long-scrolling client's list is trimmed, not rejected (issue 19)."""
    s = frozenset(ids)
    if len(s) <= limit:
        return s
    log.info("%s has %d ids; keeping the newest %d", name, len(s), limit)
    return frozenset(heapq.nlargest(limit, s))


def validate_request(
    req: home_mixer_pb2.GetScoredPostsRequest, limits: RequestLimits = DEFAULT_LIMITS
) -> None:
    """InvalidQuery (-> INVALID_ARGUMENT) naming the first field out of range."""
    if not 0 < req.viewer_id <= MAX_ID:
        raise InvalidQuery(f"viewer_id must be a positive user id, got {req.viewer_id}")
    n_ids = len(req.seen_ids) + len(req.served_ids)
    if n_ids > limits.max_ids_per_request:
        raise InvalidQuery(
            f"seen_ids + served_ids has {n_ids} ids; at most {limits.max_ids_per_request} allowed"
        )
    for name in ("seen_ids", "served_ids"):
        ids = getattr(req, name)
        if ids and min(ids) <= 0:
            raise InvalidQuery(f"{name} must hold positive post ids, got {min(ids)}")
    if req.client_app_id < 0:
        raise InvalidQuery(f"client_app_id must not be negative, got {req.client_app_id}")
    for name in ("country_code", "language_code"):
        if len(getattr(req, name)) > limits.max_code_len:
            raise InvalidQuery(f"{name} longer than {limits.max_code_len} characters")
