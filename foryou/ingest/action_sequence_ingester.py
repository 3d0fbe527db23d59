"""engagements -> Redis action sequences: per user the newest N engagement items (actions of one
impression merged into one multi-hot item), packed numpy, one key per user. Per batch: one MGET of
the touched sequences, merge in numpy, one pipelined write. Merging is idempotent, so replays are
harmless; a user's events share a partition (key = user_id), so one consumer owns each user."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from foryou.ingest.redis_ingester import RedisIngester
from foryou.kafka import Decoded
from foryou.user_state import decode_sequence, encode_sequence, merge_sequences, seq_key, sequence_items
from protos import events_pb2 as ev

log = logging.getLogger(__name__)
_VALID_ACTIONS = frozenset(ev.ActionName.values()) - {ev.ActionName.INVALID}


class ActionSequenceIngester(RedisIngester[ev.EngagementEvent]):
    name = "action-sequence"
    logical_topic = "engagements_topic"

    def decode(self, raw: bytes) -> ev.EngagementEvent:
        e = ev.EngagementEvent.FromString(raw)
        if e.user_id <= 0 or e.post_id <= 0:
            raise ValueError("engagement needs positive user_id and post_id")
        if e.action not in _VALID_ACTIONS:
            raise ValueError(f"unknown action {e.action}")
        if e.timestamp_ms <= 0:
            raise ValueError("engagement without timestamp_ms")
        return e

    def apply(self, batch: Sequence[Decoded[ev.EngagementEvent]]) -> None:
        n = len(batch)
        cols = np.empty((7, n), dtype=np.int64)
        for i, d in enumerate(batch):
            e = d.value
            cols[:, i] = (
                e.user_id,
                e.post_id,
                e.author_id,
                e.action,
                e.product_surface,
                e.timestamp_ms,
                e.dwell_ms,
            )
        users, inverse = np.unique(cols[0], return_inverse=True)
        items = sequence_items(cols[1], cols[2], cols[3], cols[4], cols[5], cols[6])
        keys = [seq_key(int(u), self.prefix) for u in users]
        current = [self._existing(k, raw) for k, raw in zip(keys, self.redis.mget(keys), strict=True)]
        merged = merge_sequences(current, items, inverse, self.config.seq_cap)
        pipe = self.redis.pipeline(transaction=False)
        for key, seq in zip(keys, merged, strict=True):
            pipe.set(key, encode_sequence(seq))
        pipe.execute()

    def _existing(self, key: str, raw: bytes | None) -> np.ndarray:
        try:
            return decode_sequence(raw)
        except ValueError:  # a corrupt value must not block the partition: start the user afresh
            log.warning("corrupt action sequence replaced", extra={"key": key})
            return decode_sequence(None)
