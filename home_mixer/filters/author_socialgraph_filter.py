"""Drops posts by authors the viewer blocks or mutes (also when they reposted someone, and reposts
of authors the viewer blocks). Safety: fails closed. While the viewer's blocked/muted lists are
unknown (user state down) every post is removed; with a blocked list, a post whose core data was not
loaded (is it a repost of a blocked author?) is removed; both with the reason recorded."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.filters.fail_closed import SafetySplit, remove_all
from home_mixer.query import ScoredPostsQuery

GRAPH_UNAVAILABLE = "blocked/muted authors unavailable"
POST_UNAVAILABLE = "repost author unavailable"


class AuthorSocialgraphFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        uf = query.user_features
        if not uf.available:
            return remove_all(query, self.name, GRAPH_UNAVAILABLE, candidates)
        blocked = uf.blocked
        hidden = blocked | uf.muted
        split = SafetySplit()
        for c in candidates:
            if c.author_id in hidden or (c.retweeted_user_id or 0) in blocked:
                split.removed.append(c)
            elif blocked and c.core_data_found is not True and not c.retweeted_user_id:
                # its reposted author (if any) is in the core data we lack
                split.uncleared(c, POST_UNAVAILABLE)
            else:
                split.kept.append(c)
        return split.result(query, self.name)
