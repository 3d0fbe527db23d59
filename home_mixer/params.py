"""Every weight, factor and size of the scored-posts pipeline, with the reference defaults
(home-mixer params/config.rs and param.rs, Aug-12 sync). One typed dataclass; a request may override
any field by name (the debug endpoint), values parsed as the field's type."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from foryou.core.events import RETENTION_S

# Action heads the weighted scorer combines: name -> (ActionName value, Params weight field).
ACTION_HEADS: dict[str, int] = {
    "favorite": 1,  # SERVER_TWEET_FAV
    "reply": 4,  # SERVER_TWEET_REPLY
    "retweet": 6,  # SERVER_TWEET_RETWEET
    "quote": 5,  # SERVER_TWEET_QUOTE
    "photo_expand": 14,  # CLIENT_TWEET_PHOTO_EXPAND
    "click": 29,  # CLIENT_TWEET_CLICK
    "profile_click": 30,  # CLIENT_TWEET_CLICK_PROFILE
    "quoted_click": 38,  # CLIENT_QUOTED_TWEET_CLICK
    "vqv": 13,  # CLIENT_TWEET_VIDEO_QUALITY_VIEW
    "dwell": 11,  # CLIENT_TWEET_RECAP_DWELLED
    "share": 37,  # CLIENT_TWEET_SHARE
    "share_via_dm": 33,  # CLIENT_TWEET_CLICK_SEND_VIA_DIRECT_MESSAGE
    "share_via_copy_link": 32,  # CLIENT_TWEET_SHARE_VIA_COPY_LINK
    "follow_author": 21,  # CLIENT_TWEET_FOLLOW_AUTHOR
    "not_interested": 17,  # CLIENT_TWEET_NOT_INTERESTED_IN
    "block_author": 23,  # CLIENT_TWEET_BLOCK_AUTHOR
    "mute_author": 25,  # CLIENT_TWEET_MUTE_AUTHOR
    "report": 16,  # CLIENT_TWEET_REPORT
    # AUG heads (our ranker predicts all 64 actions, so these are available too)
    "video_open": 47,  # CLIENT_TWEET_VIDEO_OPEN
    "open_link": 39,  # CLIENT_TWEET_OPEN_LINK
    "quoted_vqv": 48,  # CLIENT_QUOTED_TWEET_VIDEO_QUALITY_VIEW
    "not_dwelled": 12,  # CLIENT_TWEET_RECAP_NOT_DWELLED
    "post_unexplored": 59,  # SERVER_TWEET_POST_UNEXPLORED
}
DWELL_TIME_INDEX = 1  # ContinuousActionName.DWELL_TIME: seconds


@dataclass(frozen=True, slots=True)
class Params:
    # sizes (config.rs)
    top_k_candidates_to_select: int = 50
    result_size: int = 35
    max_post_age_s: int = RETENTION_S
    thunder_max_results: int = 1200
    phoenix_max_results: int = 1000
    enable_phoenix_source: bool = True
    # weights (param.rs); they multiply predicted probabilities
    favorite_weight: float = 0.5
    reply_weight: float = 5.0
    retweet_weight: float = 1.0
    quote_weight: float = 5.0
    photo_expand_weight: float = 0.05
    click_weight: float = 0.4
    profile_click_weight: float = 0.0
    quoted_click_weight: float = 0.05
    vqv_weight: float = 0.05
    dwell_weight: float = 0.0
    share_weight: float = 2.0
    share_via_dm_weight: float = 5.0
    share_via_copy_link_weight: float = 20.0
    follow_author_weight: float = 4.0
    not_interested_weight: float = -43.2
    block_author_weight: float = -31.2
    mute_author_weight: float = -58.8
    report_weight: float = -234.0
    video_open_weight: float = 0.05
    open_link_weight: float = 0.2
    quoted_vqv_weight: float = 0.0
    not_dwelled_weight: float = -0.02
    post_unexplored_weight: float = 0.02  # in-network candidates only
    cont_dwell_time_weight: float = 0.004  # × predicted dwell seconds; not part of the sums
    min_video_duration_ms: int = 10_000  # VQV weight applies only above this
    negative_scores_offset: float = 0.001
    # diversity / OON
    enable_author_diversity: bool = True
    author_diversity_decay: float = 0.5
    author_diversity_floor: float = 0.25
    oon_weight_factor: float = 0.75
    # served history (side effect) — ExcludeServedTweetIdsDuration 10 min, number 100
    served_history_ttl_s: int = 600
    served_history_max: int = 100

    def weight(self, head: str) -> float:
        return float(getattr(self, f"{head}_weight"))

    def weights(self) -> dict[str, float]:
        return {h: self.weight(h) for h in ACTION_HEADS}

    def weight_sums(self) -> tuple[float, float, float]:
        """(positive sum, negative sum as a positive number, total) over the discrete heads."""
        w = self.weights().values()
        pos = sum(x for x in w if x > 0)
        neg = -sum(x for x in w if x < 0)
        return pos, neg, pos + neg

    def with_overrides(self, overrides: dict[str, str]) -> Params:
        """A copy with `overrides` (name -> string value) applied; ValueError on an unknown name, a
        value that does not parse as the field's type, or one out of range (`check_ranges`)."""
        types = {f.name: f.type for f in fields(self)}
        changes: dict[str, Any] = {}
        for name, raw in overrides.items():
            if name not in types:
                raise ValueError(f"unknown param {name!r}")
            changes[name] = _parse(name, raw, str(types[name]))
        out = dataclasses.replace(self, **changes)
        out.check_ranges()
        return out

    def check_ranges(self) -> None:
        """ValueError naming the first param out of range: a debug override is client input, and a
        negative size, a NaN weight or a result bigger than the selection is never meaningful."""
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"param {f.name!r} must be finite, got {v}")
            if isinstance(v, int):
                hi = INT_PARAM_MAX.get(f.name)
                lo = 1 if f.name in _POSITIVE_INT_PARAMS else 0
                if v < lo or (hi is not None and v > hi):
                    raise ValueError(
                        f"param {f.name!r} must be in [{lo}, {hi if hi is not None else 'inf'}], got {v}"
                    )
        if self.result_size > self.top_k_candidates_to_select:
            raise ValueError(
                f"param 'result_size' ({self.result_size}) must not exceed "
                f"top_k_candidates_to_select ({self.top_k_candidates_to_select})"
            )

    def as_strings(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def _parse(name: str, raw: str, type_name: str) -> Any:
    s = raw.strip()
    try:
        if type_name == "bool":
            if s.lower() in {"1", "true", "yes", "on"}:
                return True
            if s.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(s)
        if type_name == "int":
            return int(s)
        if type_name == "float":
            return float(s)
    except ValueError:
        raise ValueError(f"param {name!r}: cannot parse {raw!r} as {type_name}") from None
    return s


# Upper bounds of the int params a debug override may set (the lower bound is 0, or 1 for the
# positive ones): sizes a client controls, kept within what the services accept.
INT_PARAM_MAX: dict[str, int] = {
    "top_k_candidates_to_select": 2_200,  # every candidate the two sources can return
    "max_post_age_s": RETENTION_S,  # older posts are gone from every store anyway
    "thunder_max_results": 10_000,
    "phoenix_max_results": 10_000,
    "min_video_duration_ms": 24 * 3600 * 1000,
    "served_history_ttl_s": 24 * 3600,
    "served_history_max": 10_000,
}
_POSITIVE_INT_PARAMS = frozenset({"served_history_ttl_s"})  # a 0 s TTL would delete the history


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Limits on what a scored-posts request may ask for (not overridable per request: they guard the
    service). Over `max_ids_per_request` or a malformed field -> INVALID_ARGUMENT; long lists that are
    still plausible are truncated instead (issue 19)."""

    # seen_ids / served_ids: a list longer than this keeps its newest (largest snowflake) ids
    max_seen_ids: int = 5_000
    # seen_ids + served_ids of one request beyond this: INVALID_ARGUMENT (no client sends so many)
    max_ids_per_request: int = 100_000
    # the viewer's following list as sent to Thunder (Thunder rejects more than 10,000)
    max_following: int = 10_000
    max_code_len: int = 16  # country_code / language_code


DEFAULT_PARAMS = Params()
DEFAULT_LIMITS = RequestLimits()
