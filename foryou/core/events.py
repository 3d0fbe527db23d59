"""Decoding and validation of the event topics' messages, in one place for every consumer (Thunder,
the retrieval index, the three Redis ingesters), and the retention every store of recent posts keeps.

A message that parses but carries values no producer of ours writes (ids <= 0 or past any id a
snowflake generator can have issued yet, timestamps before the snowflake epoch or far in the future,
enum values outside the proto enum, self-follows) raises `InvalidEvent`; the consumer dead-letters it
with the reason instead of applying it (one such post once lived 53 years in Redis).

The scalar `validate_*` / `decode_*` functions serve the per-message consumers; `check_post_columns`
is the same post rule over numpy columns, for Thunder's vectorised batch decoder."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from foryou.core.snowflake import SEQUENCE_MASK, TIMESTAMP_SHIFT, TWITTER_EPOCH_MS
from protos import events_pb2 as ev

# Recent posts live 48 h: Thunder's retention, the AgeFilter, the retrieval index, Redis post TTLs.
RETENTION_S = 48 * 3600
RETENTION_MS = RETENTION_S * 1000

# How far ahead of this machine's clock an id or timestamp may be (producer clock skew). Beyond it a
# value is a bug or an attack: a post id near INT64_MAX "was created" in 2080.
MAX_FUTURE_SKEW_MS = 24 * 3_600_000
# Nothing we ingest predates the snowflake epoch (2010-11-04): every post id is a snowflake.
MIN_TIMESTAMP_MS = TWITTER_EPOCH_MS
MAX_DWELL_MS = 24 * 3_600_000
MAX_VIDEO_DURATION_MS = 24 * 3_600_000
MAX_KEYWORD_CHARS = 256
MAX_SCREEN_NAME_CHARS = 64

VALID_ACTIONS = frozenset(ev.ActionName.values()) - {ev.ActionName.INVALID}
VALID_SURFACES = frozenset(ev.ProductSurface.values())
UE = ev.UserEventType
# user events that name a target user: a self-target is invalid (one cannot follow oneself)
EDGE_EVENT_TYPES = frozenset(
    {
        UE.USER_EVENT_FOLLOW,
        UE.USER_EVENT_UNFOLLOW,
        UE.USER_EVENT_BLOCK,
        UE.USER_EVENT_UNBLOCK,
        UE.USER_EVENT_MUTE,
        UE.USER_EVENT_UNMUTE,
        UE.USER_EVENT_SUBSCRIBE,
        UE.USER_EVENT_UNSUBSCRIBE,
    }
)
KEYWORD_EVENT_TYPES = frozenset({UE.USER_EVENT_MUTED_KEYWORD_ADD, UE.USER_EVENT_MUTED_KEYWORD_REMOVE})


class InvalidEvent(ValueError):
    """A message that decodes but must not be applied; the text is the dead-letter reason."""


def now_ms() -> int:
    return int(time.time() * 1000)


def max_timestamp_ms(now: int | None = None) -> int:
    """The latest acceptable event time: now plus the allowed clock skew."""
    return (now_ms() if now is None else now) + MAX_FUTURE_SKEW_MS


def max_id(now: int | None = None) -> int:
    """The largest acceptable id: the last snowflake issuable at `max_timestamp_ms`. User ids are
    snowflakes too (or older, smaller ids), so one bound serves posts, authors and users."""
    return ((max_timestamp_ms(now) - TWITTER_EPOCH_MS) << TIMESTAMP_SHIFT) | SEQUENCE_MASK


_bounds_cache: tuple[float, int, int] = (0.0, 0, 0)


def _bounds(now: int | None) -> tuple[int, int]:
    """(max id, max timestamp ms), recomputed at most once a second: the per-message validators
    run at ~100k messages/s and a second is nothing against a day of allowed skew."""
    global _bounds_cache
    if now is not None:
        return max_id(now), max_timestamp_ms(now)
    t = time.time()
    if t >= _bounds_cache[0]:
        ms = int(t * 1000)
        _bounds_cache = (t + 1.0, max_id(ms), max_timestamp_ms(ms))
    return _bounds_cache[1], _bounds_cache[2]


def _check_id(name: str, value: int, hi: int, optional: bool = False) -> None:
    if optional and value == 0:
        return
    if not 0 < value <= hi:
        raise InvalidEvent(f"{name} {value} out of range [1, {hi}]")


def _check_ts(name: str, value: int, hi_ms: int, optional: bool = False) -> None:
    if optional and value == 0:
        return
    if not MIN_TIMESTAMP_MS <= value <= hi_ms:
        raise InvalidEvent(f"{name} {value} out of range [{MIN_TIMESTAMP_MS}, {hi_ms}]")


# ---------------------------------------------------------------------------------------- posts

# A Post's optional references to other posts and users (0 = unset).
POST_REF_FIELDS = (
    "in_reply_to_post_id",
    "in_reply_to_user_id",
    "source_post_id",
    "source_user_id",
    "conversation_id",
    "quoted_post_id",
    "quoted_user_id",
)


def validate_post_event(e: ev.PostEvent, now: int | None = None) -> ev.PostEvent:
    """A create needs in-range post and author ids (referenced ids in range when set, a sane video
    duration); a delete an in-range post id. `created_at` is informational (age is read from the
    snowflake id), so only a negative one is rejected."""
    hi, hi_ts = _bounds(now)
    kind = e.WhichOneof("event")
    if kind == "create":
        p = e.create
        if (
            0 < p.post_id <= hi
            and 0 < p.author_id <= hi
            and p.created_at >= 0
            and 0 <= p.video_duration_ms <= MAX_VIDEO_DURATION_MS
            and 0 <= p.in_reply_to_post_id <= hi
            and 0 <= p.in_reply_to_user_id <= hi
            and 0 <= p.source_post_id <= hi
            and 0 <= p.source_user_id <= hi
            and 0 <= p.conversation_id <= hi
            and 0 <= p.quoted_post_id <= hi
            and 0 <= p.quoted_user_id <= hi
        ):
            return e  # the common case: one pass, no reason built
        _check_id("post_id", p.post_id, hi)
        _check_id("author_id", p.author_id, hi)
        for name in POST_REF_FIELDS:
            _check_id(name, getattr(p, name), hi, optional=True)
        if p.created_at < 0:
            raise InvalidEvent(f"created_at {p.created_at} is negative")
        if not 0 <= p.video_duration_ms <= MAX_VIDEO_DURATION_MS:
            raise InvalidEvent(f"video_duration_ms {p.video_duration_ms} out of range")
    elif kind == "delete":
        d = e.delete
        _check_id("post_id", d.post_id, hi)
        _check_id("author_id", d.author_id, hi, optional=True)
        _check_ts("deleted_at_ms", d.deleted_at_ms, hi_ts, optional=True)
    else:
        raise InvalidEvent("PostEvent with neither create nor delete")
    return e


def decode_post_event(value: bytes, now: int | None = None) -> ev.PostEvent:
    """Parse and validate a `posts` message (DecodeError or InvalidEvent: the consumer sets it aside)."""
    return validate_post_event(ev.PostEvent.FromString(value), now)


# Reason codes of `check_post_columns` (0 = valid).
POST_OK, POST_BAD_ID, POST_BAD_AUTHOR, POST_BAD_REF, POST_BAD_VIDEO, POST_BAD_CREATED_AT = range(6)
POST_CHECK_REASONS: dict[int, str] = {
    POST_BAD_ID: "invalid: post_id out of range",
    POST_BAD_AUTHOR: "invalid: author_id out of range",
    POST_BAD_REF: "invalid: referenced post/user id out of range",
    POST_BAD_VIDEO: "invalid: video_duration_ms out of range",
    POST_BAD_CREATED_AT: "invalid: created_at is negative",
}


def check_post_columns(
    post_id: np.ndarray,
    author_id: np.ndarray,
    ref_ids: Sequence[np.ndarray] = (),
    video_duration_ms: np.ndarray | None = None,
    created_at: np.ndarray | None = None,
    now: int | None = None,
) -> np.ndarray:
    """`validate_post_event` for a batch of creates as int64 columns (0 = unset for the optional
    referenced ids): a uint8 reason code per row, 0 where valid, else a key of POST_CHECK_REASONS
    (the first failing rule). A few vectorised reductions per batch, no Python per row; a rule's
    mask is built only when its reduction finds a bad row (the common batch has none)."""
    hi = max_id(now)
    code = np.zeros(len(post_id), dtype=np.uint8)
    if not len(code):
        return code
    # later rules first, so the earliest failing rule's code is the one left. As uint64 a negative
    # value is huge: `0 <= x <= hi` is one comparison.
    if created_at is not None and created_at.min() < 0:
        code[created_at < 0] = POST_BAD_CREATED_AT
    if video_duration_ms is not None and video_duration_ms.view(np.uint64).max() > MAX_VIDEO_DURATION_MS:
        code[video_duration_ms.view(np.uint64) > MAX_VIDEO_DURATION_MS] = POST_BAD_VIDEO
    for ref in ref_ids:
        if ref.view(np.uint64).max() > hi:
            code[ref.view(np.uint64) > hi] = POST_BAD_REF
    for rule, ids in ((POST_BAD_AUTHOR, author_id), (POST_BAD_ID, post_id)):
        if ids.min() <= 0 or ids.max() > hi:
            code[(ids <= 0) | (ids > hi)] = rule
    return code


# ---------------------------------------------------------------------------------- engagements


def validate_engagement_event(e: ev.EngagementEvent, now: int | None = None) -> ev.EngagementEvent:
    hi, hi_ts = _bounds(now)
    if (
        0 < e.user_id <= hi
        and 0 < e.post_id <= hi
        and 0 <= e.author_id <= hi
        and e.action in VALID_ACTIONS
        and e.product_surface in VALID_SURFACES
        and MIN_TIMESTAMP_MS <= e.timestamp_ms <= hi_ts
        and 0 <= e.dwell_ms <= MAX_DWELL_MS
    ):
        return e  # the common case: one expression, no reason built
    _check_id("user_id", e.user_id, hi)
    _check_id("post_id", e.post_id, hi)
    _check_id("author_id", e.author_id, hi, optional=True)
    if e.action not in VALID_ACTIONS:
        raise InvalidEvent(f"unknown action {e.action}")
    if e.product_surface not in VALID_SURFACES:
        raise InvalidEvent(f"unknown product_surface {e.product_surface}")
    _check_ts("timestamp_ms", e.timestamp_ms, hi_ts)
    if not 0 <= e.dwell_ms <= MAX_DWELL_MS:
        raise InvalidEvent(f"dwell_ms {e.dwell_ms} out of range [0, {MAX_DWELL_MS}]")
    return e


def decode_engagement_event(value: bytes, now: int | None = None) -> ev.EngagementEvent:
    return validate_engagement_event(ev.EngagementEvent.FromString(value), now)


# ---------------------------------------------------------------------------------- user events


def validate_user_event(e: ev.UserEvent, now: int | None = None) -> ev.UserEvent:
    """A known type; edges need an in-range target other than the user; keyword events a keyword,
    profiles a screen name. The timestamp is optional (0) and unused by ingestion, so only a
    negative or far-future one is rejected."""
    hi, hi_ts = _bounds(now)
    _check_id("user_id", e.user_id, hi)
    if e.type in EDGE_EVENT_TYPES:
        _check_id("target_user_id", e.target_user_id, hi)
        if e.target_user_id == e.user_id:
            raise InvalidEvent(f"{UE.Name(e.type)} of user {e.user_id} to itself")
    elif e.type in KEYWORD_EVENT_TYPES:
        kw = e.keyword.strip()
        if not kw:
            raise InvalidEvent(f"{UE.Name(e.type)} without keyword")
        if len(kw) > MAX_KEYWORD_CHARS:
            raise InvalidEvent(f"keyword longer than {MAX_KEYWORD_CHARS} characters")
    elif e.type == UE.USER_EVENT_PROFILE:
        if not e.screen_name:
            raise InvalidEvent("USER_EVENT_PROFILE without screen_name")
        if len(e.screen_name) > MAX_SCREEN_NAME_CHARS:
            raise InvalidEvent(f"screen_name longer than {MAX_SCREEN_NAME_CHARS} characters")
    else:
        raise InvalidEvent(f"unknown user event type {e.type}")
    if not 0 <= e.timestamp_ms <= hi_ts:
        raise InvalidEvent(f"timestamp_ms {e.timestamp_ms} out of range")
    return e


def decode_user_event(value: bytes, now: int | None = None) -> ev.UserEvent:
    return validate_user_event(ev.UserEvent.FromString(value), now)
