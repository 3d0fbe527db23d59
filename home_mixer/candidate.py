"""One post candidate as it moves through the pipeline (reference PostCandidate, JAN fields plus
what this system hydrates: labels, subscription flag, author relation)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def finite_or_zero(x: float | None) -> float:
    """A score as the response and the served log report it (one rule, so the log equals what the
    client saw): unset or non-finite -> 0."""
    return x if x is not None and math.isfinite(x) else 0.0


@dataclass(slots=True)
class PostCandidate:
    post_id: int
    author_id: int = 0
    source: str = ""  # component name of the source (ThunderSource / PhoenixSource)
    served_type: str = ""  # ForYouInNetwork / ForYouPhoenixRetrieval
    retrieval_score: float | None = None
    retrieval_model_version: str = ""  # retrieval model that produced it (served log); "" = not retrieval
    # core data
    text: str = ""
    in_reply_to_post_id: int | None = None
    retweeted_post_id: int | None = None
    retweeted_user_id: int | None = None
    conversation_id: int | None = None
    ancestors: list[int] = field(default_factory=list)
    labels: tuple[str, ...] = ()
    core_data_found: bool | None = None  # None = not looked up (store down), False = missing/deleted
    # other hydrated fields
    in_network: bool | None = None
    video_duration_ms: int | None = None
    subscription_author_id: int | None = None
    subscription_checked: bool = False  # SubscriptionHydrator ran for it (None above then means public)
    author_followers_count: int | None = None
    author_screen_name: str = ""
    retweeted_screen_name: str = ""
    author_blocks_viewer: bool | None = None
    # BidirectionalFollowHydrator: viewer follows the author and the author follows the viewer
    # (None = unknown: the check failed or did not run; no boost then)
    is_mutual_follow_author: bool | None = None
    # EngagementCountsHydrator (original post's counts; None = not in the counter)
    view_count_on_home: int | None = None
    fav_count: int | None = None
    visibility_reason: str | None = None
    removal_reason: str | None = None  # why a safety filter that failed closed removed it
    # scoring
    phoenix_scores: dict[str, float] | None = None  # head name -> probability; "dwell_time" seconds
    action_probs: Any = None  # raw ranker output (list or ndarray row), index = ActionName
    dwell_time: float | None = None  # predicted dwell seconds (continuous head 1)
    click_dwell_time: float | None = None  # predicted click-dwell seconds (continuous head 2)
    prediction_request_id: str = ""
    last_scored_at_ms: int = 0
    weighted_score: float | None = None
    score: float | None = None
    local_score: float | None = None  # s_loc: weighted score after the cold-start lift (fallback score)
    cold_start_lift_rank: int | None = None  # the cold-start lift's target rank (15) when lifted
    rank_before_dpp: int | None = None  # 0-based rank by score entering the DPP pool (None: not pooled)
    dpp_selected: bool | None = None  # None: DPP did not run for this request
    # video carousel: appended by the selector's carousel extension (VIDEO_CAROUSEL_EXTRA_CANDIDATES);
    # chosen for the module by VideoCarouselFilter; width / height from VideoAspectRatioHydrator
    video_carousel_extra: bool = False
    video_carousel: bool = False
    video_aspect_ratio: float | None = None
    multipliers: list[tuple[str, float]] = field(default_factory=list)

    def is_scored(self) -> bool:
        return self.action_probs is not None or self.phoenix_scores is not None

    def head_scores(self) -> dict[str, float]:
        """Head name -> probability (+ "dwell_time"), from whichever form the ranker output is in."""
        if self.phoenix_scores is not None:
            return self.phoenix_scores
        if self.action_probs is None:
            return {}
        from home_mixer.params import ACTION_HEADS

        n = len(self.action_probs)
        out = {h: float(self.action_probs[i]) for h, i in ACTION_HEADS.items() if i < n}
        if self.dwell_time is not None:
            out["dwell_time"] = self.dwell_time
        if self.click_dwell_time is not None:
            out["click_dwell_time"] = self.click_dwell_time
        return out

    def is_reply(self) -> bool:
        return bool(self.in_reply_to_post_id)

    def is_repost(self) -> bool:
        return bool(self.retweeted_post_id)

    def original_post_id(self) -> int:
        return self.retweeted_post_id or self.post_id

    def original_author_id(self) -> int:
        return self.retweeted_user_id or self.author_id

    def related_ids(self) -> tuple[int, ...]:
        """The post, the reposted post and the replied-to post (seen/served filters)."""
        ids = [self.post_id]
        if self.retweeted_post_id:
            ids.append(self.retweeted_post_id)
        if self.in_reply_to_post_id:
            ids.append(self.in_reply_to_post_id)
        return tuple(ids)

    def conversation_key(self) -> int:
        """Reference DedupConversation: min(ancestors), else the post itself."""
        return min(self.ancestors) if self.ancestors else self.post_id
