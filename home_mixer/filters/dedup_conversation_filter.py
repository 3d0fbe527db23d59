"""Post-selection: one post per conversation (min of ancestors, else the post). A later post with a
strictly higher score takes the kept one's slot; the displaced one is removed. None scores count 0.
The video carousel's extra videos are a separate module: they pass through untouched (after the
feed) and never displace a feed post."""

from __future__ import annotations

import math

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


def _score(c: PostCandidate) -> float:
    s = c.score
    return s if s is not None and math.isfinite(s) else 0.0


class DedupConversationFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        slots: list[PostCandidate] = []
        slot_of: dict[int, int] = {}
        removed: list[PostCandidate] = []
        extras: list[PostCandidate] = []
        for c in candidates:
            if c.video_carousel_extra:
                extras.append(c)
                continue
            key = c.conversation_key()
            i = slot_of.get(key)
            if i is None:
                slot_of[key] = len(slots)
                slots.append(c)
            elif _score(c) > _score(slots[i]):
                removed.append(slots[i])
                slots[i] = c
            else:
                removed.append(c)
        return FilterResult(slots + extras, removed)
