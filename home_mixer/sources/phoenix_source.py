"""Out-of-network candidates from Phoenix two-tower retrieval; off for in-network-only requests."""

from __future__ import annotations

from candidate_pipeline import Source
from home_mixer.candidate import PostCandidate
from home_mixer.clients import RetrievalClient
from home_mixer.query import ScoredPostsQuery
from protos import phoenix_pb2

SERVED_TYPE = "ForYouPhoenixRetrieval"
STALE = "retrieval_stale"  # in the response's `degraded` list


class PhoenixSource(Source[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.3

    def __init__(self, client: RetrievalClient) -> None:
        self.client = client

    def enable(self, query: ScoredPostsQuery) -> bool:
        return not query.in_network_only and query.params.enable_phoenix_source

    async def get_candidates(self, query: ScoredPostsQuery) -> list[PostCandidate]:
        req = phoenix_pb2.RetrieveRequest(
            user_id=query.viewer_id,
            top_k=query.params.phoenix_max_results,
            exclude_post_ids=sorted(query.seen_ids),
        )
        if query.action_sequence is not None:  # else retrieval reads it from Redis itself
            req.action_sequence.CopyFrom(query.action_sequence)
        resp = await self.client.retrieve(req)
        if resp.stale:  # the retrieval index cannot ingest: recent posts may be missing
            query.stale.add(STALE)
        version = resp.model_version  # recorded per candidate in the served log (training joins)
        return [
            PostCandidate(
                post_id=c.post_id,
                author_id=c.author_id,
                source=self.name,
                served_type=SERVED_TYPE,
                retrieval_score=c.score,
                retrieval_model_version=version,
            )
            for c in resp.candidates
        ]
