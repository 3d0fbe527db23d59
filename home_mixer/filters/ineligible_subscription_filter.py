"""Drops subscriber-only posts of authors the viewer does not subscribe to. Privacy: fails closed. A
post whose subscriber-only flag was not looked up (post store down), or a subscriber-only post while
the viewer's subscriptions are unknown (user state down), is removed, with the reason recorded."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.filters.fail_closed import SafetySplit
from home_mixer.query import ScoredPostsQuery

UNAVAILABLE = "subscription data unavailable"


class IneligibleSubscriptionFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        uf = query.user_features
        subs = uf.subscriptions
        subs_known = uf.available
        split = SafetySplit()
        for c in candidates:
            author = c.subscription_author_id
            if not c.subscription_checked or (author is not None and not subs_known):
                split.uncleared(c, UNAVAILABLE)
            elif author is not None and author not in subs:
                split.removed.append(c)
            else:
                split.kept.append(c)
        return split.result(query, self.name)
