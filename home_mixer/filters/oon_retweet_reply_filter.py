"""Out-of-network reposts and replies (reference OONRetweetReplyFilter, Oct-7). Removes a candidate
that is not known to be in-network (in_network False or unknown) and is a repost or a reply not
exempted, and any reply without ancestors (whatever its network). A reply is exempted only with
EnablePhoenixOonReplies (false) and when it came from Phoenix retrieval (ForYouPhoenixRetrieval or
ForYouPhoenixRetrievalCold)."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery

PHOENIX_SERVED_TYPES = frozenset({"ForYouPhoenixRetrieval", "ForYouPhoenixRetrievalCold"})


def _removed(c: PostCandidate, allow_phoenix_replies: bool) -> bool:
    reply = c.is_reply()
    if reply and not c.ancestors:
        return True
    if c.in_network is True:
        return False
    if c.is_repost():
        return True
    exempt = allow_phoenix_replies and c.served_type in PHOENIX_SERVED_TYPES
    return reply and not exempt


class OONRetweetReplyFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        allow = query.params.enable_phoenix_oon_replies
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            (removed if _removed(c, allow) else kept).append(c)
        return FilterResult(kept, removed)
