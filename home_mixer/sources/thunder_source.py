"""In-network candidates: recent posts of the accounts the viewer follows, from Thunder."""

from __future__ import annotations

from candidate_pipeline import Source
from home_mixer.candidate import PostCandidate
from home_mixer.clients import ThunderClient
from home_mixer.query import ScoredPostsQuery
from protos import thunder_pb2

SERVED_TYPE = "ForYouInNetwork"
STALE = "thunder_stale"  # in the response's `degraded` list


class ThunderSource(Source[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.3

    def __init__(self, client: ThunderClient) -> None:
        self.client = client

    async def get_candidates(self, query: ScoredPostsQuery) -> list[PostCandidate]:
        following = sorted(query.user_features.following)
        if not following:
            return []
        req = thunder_pb2.GetInNetworkPostsRequest(
            user_id=query.viewer_id,
            following_user_ids=following,
            exclude_post_ids=sorted(query.seen_ids),
            max_results=query.params.thunder_max_results,
            algorithm="default",
        )
        resp = await self.client.get_in_network_posts(req)
        if resp.stale:  # Thunder cannot ingest: recent posts may be missing
            query.stale.add(STALE)
        out = []
        name = self.name
        # optional fields read 0 when unset: "> 0" means set and valid, without HasField's cost
        for p in resp.posts:
            reply_to = p.in_reply_to_post_id
            conversation = p.conversation_id
            ancestors: list[int] = []
            if reply_to > 0:
                ancestors.append(reply_to)
                if conversation > 0 and conversation != reply_to:
                    ancestors.append(conversation)
            retweet = p.is_retweet
            out.append(
                PostCandidate(
                    post_id=p.post_id,
                    author_id=p.author_id,
                    source=name,
                    served_type=SERVED_TYPE,
                    in_reply_to_post_id=reply_to if reply_to > 0 else None,
                    retweeted_post_id=(p.source_post_id or None) if retweet else None,
                    retweeted_user_id=(p.source_user_id or None) if retweet else None,
                    conversation_id=conversation if conversation > 0 else None,
                    ancestors=ancestors,
                )
            )
        return out
