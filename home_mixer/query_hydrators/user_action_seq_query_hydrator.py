"""The viewer's engagement history (Redis), the input of retrieval and ranking."""

from __future__ import annotations

from candidate_pipeline import QueryHydrator
from home_mixer.clients import UserStateClient
from home_mixer.query import ScoredPostsQuery
from protos import phoenix_pb2

UAS_MAX_SEQUENCE_LENGTH = 128  # the ingesters cap the stored sequence at the same length


class UserActionSeqQueryHydrator(QueryHydrator[ScoredPostsQuery]):
    timeout_s = 0.3

    def __init__(self, store: UserStateClient, max_len: int = UAS_MAX_SEQUENCE_LENGTH) -> None:
        self.store, self.max_len = store, max_len

    async def hydrate(self, query: ScoredPostsQuery) -> phoenix_pb2.ActionSequence | None:
        seq = await self.store.read_action_sequence(query.viewer_id)
        if not seq.items:
            return None  # no history: the ranker is skipped (reference: candidates stay unscored)
        if len(seq.items) > self.max_len:  # keep the newest (drop from the front)
            trimmed = phoenix_pb2.ActionSequence()
            trimmed.items.extend(seq.items[-self.max_len :])
            seq = trimmed
        return seq

    def update(self, query: ScoredPostsQuery, hydrated: phoenix_pb2.ActionSequence | None) -> None:
        query.action_sequence = hydrated
        query.action_sequence_loaded = True  # None now means "no history", not "read failed"
