"""Drops posts older than max_post_age_s (48 h), age read from the snowflake id; an id that does not
decode to a time after the epoch and not in the future (beyond a minute of skew) is dropped too."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from foryou.core.snowflake import timestamp_ms
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery

CLOCK_SKEW_MS = 60_000


class AgeFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        max_age_ms = query.params.max_post_age_s * 1000
        now = query.now_ms
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            ok = c.post_id > 0 and (now - max_age_ms) <= timestamp_ms(c.post_id) <= now + CLOCK_SKEW_MS
            (kept if ok else removed).append(c)
        return FilterResult(kept, removed)
