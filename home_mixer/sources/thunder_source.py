"""In-network candidates: recent posts of the accounts the viewer follows, from Thunder."""

from __future__ import annotations

from candidate_pipeline import Source
from home_mixer.candidate import PostCandidate
from home_mixer.clients import ThunderClient
from home_mixer.query import ScoredPostsQuery
from protos import thunder_pb2

SERVED_TYPE = "ForYouInNetwork"


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
        out = []
        for p in resp.posts:
            reply_to = (
                p.in_reply_to_post_id
                if p.HasField("in_reply_to_post_id") and p.in_reply_to_post_id > 0
                else None
            )
            ancestors: list[int] = []
            if reply_to is not None:
                ancestors.append(reply_to)
                if p.HasField("conversation_id") and p.conversation_id > 0 and p.conversation_id != reply_to:
                    ancestors.append(p.conversation_id)
            out.append(
                PostCandidate(
                    post_id=p.post_id,
                    author_id=p.author_id,
                    source=self.name,
                    served_type=SERVED_TYPE,
                    in_reply_to_post_id=reply_to,
                    retweeted_post_id=p.source_post_id if p.is_retweet and p.source_post_id else None,
                    retweeted_user_id=p.source_user_id if p.is_retweet and p.source_user_id else None,
                    conversation_id=p.conversation_id if p.HasField("conversation_id") else None,
                    ancestors=ancestors,
                )
            )
        return out
