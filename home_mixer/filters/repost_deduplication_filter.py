"""Drops a repost whose original was already seen earlier in the list, as an original or as another
repost's target. Originals are always kept (reference JAN RetweetDeduplicationFilter)."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class RepostDeduplicationFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        seen: set[int] = set()
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            if c.retweeted_post_id:
                if c.retweeted_post_id in seen:
                    removed.append(c)
                    continue
                seen.add(c.retweeted_post_id)
            else:
                seen.add(c.post_id)
            kept.append(c)
        return FilterResult(kept, removed)
