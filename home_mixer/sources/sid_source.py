"""Semantic-ID retrieval (reference SidSource, Oct-7; off by default: EnableSidSource false). Seeds:
the post ids of the viewer's engagement history, newest first, de-duplicated, the first 50; the
SID-retrieval service returns posts sharing a semantic-id prefix of at least 3 levels with a seed
(max 800 results, 100 per seed). Emitted as ForYouPhoenixRetrievalMoe with the shared prefix depth
as retrieval score. Enabled only with the switch, a SID-retrieval client, a request that is not
in-network-only, and at least one engagement signal. Any client error fails the source (it then
contributes nothing). No SID-retrieval service is deployed in this repository: a client (e.g. over
the ranker's SID lookup) must be passed in `HomeMixerClients.sid_retrieval`."""

from __future__ import annotations

from candidate_pipeline import Source
from home_mixer.candidate import PostCandidate
from home_mixer.clients import SidRetrievalClient
from home_mixer.query import ScoredPostsQuery

SERVED_TYPE = "ForYouPhoenixRetrievalMoe"


def sid_seeds(query: ScoredPostsQuery) -> list[int]:
    seq = query.action_sequence
    if seq is None:
        return []
    items = sorted(seq.items, key=lambda it: -it.timestamp_ms)  # stable: ties keep history order
    return list(dict.fromkeys(it.post_id for it in items if it.post_id > 0))[
        : query.params.sid_source_max_seeds
    ]


class SidSource(Source[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.3

    def __init__(self, client: SidRetrievalClient | None) -> None:
        self.client = client

    def enable(self, query: ScoredPostsQuery) -> bool:
        return (
            query.params.enable_sid_source
            and self.client is not None
            and not query.in_network_only
            and bool(sid_seeds(query))
        )

    async def get_candidates(self, query: ScoredPostsQuery) -> list[PostCandidate]:
        assert self.client is not None  # enable() checked
        p = query.params
        got = await self.client.retrieve_by_sid(
            sid_seeds(query),
            p.sid_source_max_results,
            p.sid_source_max_per_seed,
            p.sid_source_min_prefix_depth,
        )
        return [
            PostCandidate(
                post_id=post,
                author_id=author,
                source=self.name,
                served_type=SERVED_TYPE,
                retrieval_score=float(depth),
            )
            for post, author, depth in got
        ]
