"""The scored-posts query: request fields, validation, and what the query hydrators fill in."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from home_mixer.params import DEFAULT_PARAMS, Params
from protos import home_mixer_pb2, phoenix_pb2

if TYPE_CHECKING:
    from home_mixer.post_lookup import PostLookup

MAX_ID_LIST = 5000  # seen_ids / served_ids longer than this are rejected (INVALID_ARGUMENT)
MAX_CODE_LEN = 16


class InvalidQuery(ValueError):
    """A request the service must answer with INVALID_ARGUMENT."""


@dataclass(slots=True)
class UserFeatures:
    following: frozenset[int] = frozenset()
    blocked: frozenset[int] = frozenset()
    muted: frozenset[int] = frozenset()
    subscriptions: frozenset[int] = frozenset()
    muted_keywords: tuple[str, ...] = ()


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
    user_features: UserFeatures = field(default_factory=UserFeatures)
    # per-request shared state
    post_lookup: PostLookup | None = None
    model_version: str = ""

    @classmethod
    def from_request(
        cls, req: home_mixer_pb2.GetScoredPostsRequest, params: Params = DEFAULT_PARAMS, **kw: object
    ) -> ScoredPostsQuery:
        validate_request(req)
        q = cls(
            viewer_id=req.viewer_id,
            seen_ids=frozenset(req.seen_ids),
            served_ids=frozenset(req.served_ids),
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


def validate_request(req: home_mixer_pb2.GetScoredPostsRequest) -> None:
    if req.viewer_id <= 0:
        raise InvalidQuery(f"viewer_id must be a positive user id, got {req.viewer_id}")
    for name in ("seen_ids", "served_ids"):
        n = len(getattr(req, name))
        if n > MAX_ID_LIST:
            raise InvalidQuery(f"{name} has {n} ids; at most {MAX_ID_LIST} allowed")
    for name in ("country_code", "language_code"):
        if len(getattr(req, name)) > MAX_CODE_LEN:
            raise InvalidQuery(f"{name} longer than {MAX_CODE_LEN} characters")
