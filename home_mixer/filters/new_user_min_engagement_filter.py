"""New viewers see only out-of-network posts with some engagement (reference
NewUserMinEngagementFilter; off by default: EnableNewUserMinEngagementFilter false, threshold 0).
Enabled for a viewer whose account is younger than new_user_max_account_age_s (1,800 s; from a
snowflake user id: sequential ids are never new). Removes out-of-network candidates whose fav count
(from the engagement counter; unknown = 0) is below new_user_min_engagement_threshold; at the
default threshold 0.0 it removes nothing even when on. In-network candidates are always kept."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery, viewer_account_age_s


class NewUserMinEngagementFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def enable(self, query: ScoredPostsQuery) -> bool:
        p = query.params
        if not p.enable_new_user_min_engagement_filter:
            return False
        age = viewer_account_age_s(query)
        return age is not None and age < p.new_user_max_account_age_s

    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        threshold = query.params.new_user_min_engagement_threshold
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            low = c.in_network is not True and (c.fav_count or 0) < threshold
            (removed if low else kept).append(c)
        return FilterResult(kept, removed)
