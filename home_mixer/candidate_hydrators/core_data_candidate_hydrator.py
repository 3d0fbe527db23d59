"""Post core data from Redis (one MGET for the candidates and their reposted originals): text,
reply/repost ids, conversation, labels. A miss marks the candidate (`core_data_found=False`) without
wiping the ids its source provided."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from candidate_pipeline import Hydrator
from home_mixer.candidate import PostCandidate
from home_mixer.post_lookup import PostLookup
from home_mixer.query import ScoredPostsQuery
from protos import events_pb2


@dataclass(slots=True)
class CoreData:
    post: events_pb2.Post | None
    original: events_pb2.Post | None


def lookup_ids(candidates: Sequence[PostCandidate]) -> list[int]:
    """Every candidate id plus every known reposted-original id: the one MGET all post hydrators share."""
    ids = [c.post_id for c in candidates]
    ids += [c.retweeted_post_id for c in candidates if c.retweeted_post_id]
    return ids


async def fetch_core(query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[CoreData]:
    """The post (and reposted original) of every candidate. The three post hydrators of one stage
    call this concurrently with the same list: they share one task (one MGET, one decode pass)."""
    lookup = query.post_lookup
    if lookup is None:
        raise RuntimeError("query has no post lookup")
    memo = lookup.memo.get("core")
    if memo is None or memo[0] is not candidates:
        memo = (candidates, asyncio.ensure_future(_core_data(lookup, candidates)))
        lookup.memo["core"] = memo
    # shield: one hydrator timing out must not cancel the work the others share
    got: list[CoreData] = await asyncio.shield(memo[1])
    return got


async def _core_data(lookup: PostLookup, candidates: Sequence[PostCandidate]) -> list[CoreData]:
    posts = await lookup.get(lookup_ids(candidates))
    out = []
    for c in candidates:
        p = posts.get(c.post_id)
        src = (p.source_post_id if p is not None and p.is_retweet else 0) or c.retweeted_post_id
        out.append(CoreData(p, posts.get(src) if src else None))
    return out


class CoreDataCandidateHydrator(Hydrator[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.3

    async def hydrate(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[CoreData]:
        return await fetch_core(query, candidates)

    def update(self, c: PostCandidate, hydrated: CoreData) -> None:
        p = hydrated.post
        if p is None:
            c.core_data_found = False
            return
        c.core_data_found = True
        if c.author_id == 0:
            c.author_id = p.author_id
        if p.is_retweet and p.source_post_id:
            c.retweeted_post_id = p.source_post_id
            c.retweeted_user_id = p.source_user_id or c.retweeted_user_id
        # optional fields read 0 when unset: > 0 is "set and valid" without HasField's cost
        reply_to, conversation = p.in_reply_to_post_id, p.conversation_id
        if reply_to > 0:
            c.in_reply_to_post_id = reply_to
        if conversation > 0:
            c.conversation_id = conversation
        if not c.ancestors and c.in_reply_to_post_id:
            c.ancestors = [c.in_reply_to_post_id]
            if c.conversation_id and c.conversation_id != c.in_reply_to_post_id:
                c.ancestors.append(c.conversation_id)
        o = hydrated.original
        # a repost shows the original's text and carries its labels
        c.text = o.text if o is not None and o.text else p.text
        if p.labels or (o is not None and o.labels):
            labels = list(p.labels) + (list(o.labels) if o is not None else [])
            c.labels = tuple(dict.fromkeys(lb.lower() for lb in labels))
        else:
            c.labels = ()
