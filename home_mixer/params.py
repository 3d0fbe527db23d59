"""Every weight, factor and size of the scored-posts pipeline, with the reference defaults
(home-mixer params/config.rs and param.rs, vm-ranker params.rs; Oct-7 2026 sync, issue 19). The
reference's param name is in each field's comment. One typed dataclass; a request may override
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
CLICK_DWELL_TIME_INDEX = 2  # ContinuousActionName.CLICK_DWELL_TIME: seconds (head `click_dwell_time`)


@dataclass(frozen=True, slots=True)
class Params:
    # sizes (config.rs)
    top_k_candidates_to_select: int = 50
    result_size: int = 35
    max_post_age_s: int = RETENTION_S
    thunder_max_results: int = 1200
    phoenix_max_results: int = 1000
    enable_phoenix_source: bool = True
    # weights (param.rs / vm-ranker params.rs, Oct-7); they multiply predicted probabilities
    favorite_weight: float = 0.5  # FavoriteWeight
    reply_weight: float = 5.0  # ReplyWeight
    retweet_weight: float = 1.0  # RetweetWeight
    quote_weight: float = 5.0  # QuoteWeight
    photo_expand_weight: float = 0.05  # PhotoExpandWeight
    click_weight: float = 0.3  # ClickWeight (Aug 0.4)
    profile_click_weight: float = 0.0  # ProfileClickWeight
    quoted_click_weight: float = 0.05  # QuotedClickWeight
    vqv_weight: float = 0.0  # VqvWeight (Aug 0.05): the VQV gates are moot by default
    dwell_weight: float = 0.05  # DwellWeight (Aug 0.0)
    share_weight: float = 2.0  # ShareWeight
    share_via_dm_weight: float = 5.0  # ShareViaDmWeight
    share_via_copy_link_weight: float = 20.0  # ShareViaCopyLinkWeight
    follow_author_weight: float = 4.0  # FollowAuthorWeight
    not_interested_weight: float = -47.52  # NotInterestedWeight (Aug -43.2)
    block_author_weight: float = -31.2  # BlockAuthorWeight
    mute_author_weight: float = -58.8  # MuteAuthorWeight
    report_weight: float = -234.0  # ReportWeight
    video_open_weight: float = 0.07  # VideoOpenWeight (Aug 0.05)
    open_link_weight: float = 0.2  # OpenLinkWeight
    quoted_vqv_weight: float = 0.0  # QuotedVqvWeight
    not_dwelled_weight: float = -0.02  # NotDwelledWeight
    # PostUnexploredWeight: 0.015 in home-mixer param.rs, 0.02 as vm-ranker's code literal (sheet §7.3:
    # we take 0.015, the production config's mirror); in-network candidates only
    # (PostUnexploredIncludeOutOfNetwork false)
    post_unexplored_weight: float = 0.015
    # continuous heads: weight × predicted seconds; not part of the offset sums
    cont_dwell_time_weight: float = 0.004  # ContDwellTimeWeight
    cont_click_dwell_time_weight: float = 0.4  # ContClickDwellTimeWeight (Aug 0.0)
    # our ranker trains continuous slot 1 (dwell) only; slot 2 (click dwell) is read when this is on
    ranker_has_click_dwell_head: bool = False
    # mutual follow (BidirectionalFollowHydrator): + boost on the reply / dwell weight of an original
    # (not a reply, not a repost) whose author and viewer follow each other
    bidirectional_follow_reply_weight_boost: float = 15.0  # BidirectionalFollowReplyWeightBoost
    bidirectional_follow_dwell_weight_boost: float = 0.0  # BidirectionalFollowDwellWeightBoost
    min_video_duration_ms: int = 10_000  # MinVideoDurationMs: the VQV weight applies only above this
    # home-mixer's local VQV gate also needs the viewer's follower count below this (candidates_util.rs)
    vqv_max_viewer_followers: int = 10_000
    negative_scores_offset: float = 0.001  # NEGATIVE_SCORES_OFFSET
    # vm-ranker: diversity / OON (moved from home-mixer param.rs on 09-23, same values)
    enable_author_diversity: bool = True  # EnableAuthorDiversity
    author_diversity_decay: float = 0.5  # AuthorDiversityDecay
    author_diversity_floor: float = 0.25  # AuthorDiversityFloor
    oon_weight_factor: float = 0.75  # OonWeightFactor
    # EnableOonRescoreForInNetworkRepliesRetweets: in-network replies and reposts get the OON factor too
    enable_oon_rescore_in_network_replies_retweets: bool = True
    # new viewers (account younger than this, following >= new_user_min_following) get
    # new_user_oon_weight_factor instead; 0 s = no viewer is ever new (the reference default)
    new_user_age_threshold_s: int = 0  # NewUserAgeThresholdSecs
    new_user_oon_weight_factor: float = 0.00001  # NewUserOonWeightFactor
    new_user_min_following: int = 5  # NEW_USER_MIN_FOLLOWING
    # DPP re-rank (vm-ranker DppEnabled / DppTheta / DppMaxSelectedRank; top-K = --dpp_top_k)
    dpp_enabled: bool = True
    dpp_theta: float = 0.65
    dpp_max_selected_rank: int = 150
    dpp_top_k: int = 50
    dpp_embedding_dim: int = 256  # our hashed text embedding (the reference's mm store is 1024-d)
    # new-author cold start (AuthorColdStart, Oct-7 values)
    enable_viewer_cold_start: bool = True  # EnableViewerColdStart
    cold_start_impression_threshold: int = 200  # ColdStartImpressionThreshold: view_count_on_home < this
    cold_start_follower_cap: int = 50_000  # ColdStartFollowerCap: author followers <= this
    cold_start_max_post_age_s: int = 7_200  # ColdStartMaxPostAgeSecs
    low_impressions_max_position_ratio: float = 0.97  # LowImpressionsMaxPositionRatio
    cold_start_slot_min: int = 15  # ColdStartSlotMin (0-based target rank)
    cold_start_slot_max: int = 16  # ColdStartSlotMax
    enable_cold_start_thompson_sampling: bool = True  # EnableColdStartThompsonSampling
    cold_start_beta_alpha0: float = 0.75  # ColdStartBetaAlpha0
    cold_start_beta_beta0: float = 49.25  # ColdStartBetaBeta0
    cold_start_ts_top_k: int = 2  # ColdStartTsTopK
    cold_start_impression_scale: float = 1.0  # ColdStartImpressionScale
    # sources
    enable_popular_posts_source: bool = True  # EnablePopularPostsSource
    popular_posts_max_results: int = 500  # PopularPostsMaxResults
    enable_sid_source: bool = False  # EnableSidSource
    sid_source_max_results: int = 800  # SidSourceMaxResults
    sid_source_max_seeds: int = 50  # SidSourceMaxSeeds
    sid_source_max_per_seed: int = 100  # SidSourceMaxPerSeed
    sid_source_min_prefix_depth: int = 3  # SidSourceMinPrefixDepth
    # filters
    enable_served_filter_all_requests: bool = True  # EnableServedFilterAllRequests
    enable_phoenix_oon_replies: bool = False  # EnablePhoenixOonReplies
    enable_new_user_min_engagement_filter: bool = False  # EnableNewUserMinEngagementFilter
    new_user_min_engagement_threshold: float = 0.0  # NewUserMinEngagementThreshold (favs)
    new_user_max_account_age_s: int = 1_800  # NewUserMaxAccountAgeSecs
    # FavHoldoutFilter (last pre-scoring filter): holds out a share of posts by their fav count, by a
    # splitmix bucket of (original post, viewer); the percent table is in the filter's file
    enable_fav_holdout: bool = False  # EnableFavHoldout
    # video carousel (selector extension, VideoAspectRatio hydrator, VideoCarouselFilter)
    enable_video_carousel: bool = False  # EnableVideoCarousel
    video_carousel_extra_candidates: int = 30  # VIDEO_CAROUSEL_EXTRA_CANDIDATES (config.rs)
    video_carousel_max_videos: int = 5  # VIDEO_CAROUSEL_MAX_VIDEOS (config.rs)
    video_carousel_min_videos: int = 3  # VIDEO_CAROUSEL_MIN_VIDEOS (config.rs)
    video_carousel_max_aspect_ratio: float = 1.0  # vertical = width / height below this (video_carousel.rs)
    video_carousel_position: int = 6  # VideoCarouselPosition: where the client shows the module
    # VideoCarouselFatigueMinutes: no carousel within this long of the last one (the blending
    # pipeline's served history decides; not tracked here, see docs/home_mixer.md)
    video_carousel_fatigue_minutes: int = 60
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
    "vqv_max_viewer_followers": 1 << 40,
    "new_user_age_threshold_s": 10 * 365 * 86_400,
    "new_user_min_following": 10_000,
    "dpp_max_selected_rank": 2_200,
    "dpp_top_k": 2_200,
    "dpp_embedding_dim": 1_024,
    "cold_start_impression_threshold": 1 << 40,
    "cold_start_follower_cap": 1 << 40,
    "cold_start_max_post_age_s": RETENTION_S,
    "cold_start_slot_min": 2_200,
    "cold_start_slot_max": 2_200,
    "cold_start_ts_top_k": 2_200,
    "popular_posts_max_results": 10_000,
    "sid_source_max_results": 10_000,
    "sid_source_max_seeds": 1_000,
    "sid_source_max_per_seed": 10_000,
    "sid_source_min_prefix_depth": 16,
    "new_user_max_account_age_s": 10 * 365 * 86_400,
    "video_carousel_extra_candidates": 2_200,
    "video_carousel_max_videos": 100,
    "video_carousel_min_videos": 100,
    "video_carousel_position": 1_000,
    "video_carousel_fatigue_minutes": 7 * 24 * 60,
}
_POSITIVE_INT_PARAMS = frozenset(
    {"served_history_ttl_s", "dpp_embedding_dim"}
)  # a 0 s TTL would delete the history


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
