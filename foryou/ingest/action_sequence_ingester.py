"""engagements -> Redis action sequences: per user the newest N engagement items (actions of one
impression merged into one multi-hot item), packed numpy, one key per user. Per batch: one MGET of
the touched sequences, merge in numpy, one pipelined write. Merging is idempotent (with a per-user
eviction watermark in `{p}seqmeta:{u}`), so replays are harmless; a user's events share a
partition (key = user_id), so one consumer owns each user."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from foryou.core import redis_client
from foryou.core.events import decode_engagement_event
from foryou.core.kafka import Decoded
from foryou.core.user_state import (
    decode_sequence,
    decode_sequence_meta,
    encode_sequence,
    encode_sequence_meta,
    merge_sequence_states,
    seq_key,
    seq_meta_key,
    sequence_items,
)
from foryou.ingest.redis_ingester import RedisIngester
from protos import events_pb2 as ev

log = logging.getLogger(__name__)


class ActionSequenceIngester(RedisIngester[ev.EngagementEvent]):
    name = "action-sequence"
    logical_topic = "engagements_topic"

    def decode(self, raw: bytes) -> ev.EngagementEvent:
        # ids, action / surface enums, time and dwell ranges: foryou.core.events (InvalidEvent -> DLQ)
        return decode_engagement_event(raw)

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
        meta_keys = [seq_meta_key(int(u), self.prefix) for u in users]
        # sequences and their bookkeeping: one round trip (per node, grouped by slot, on a cluster)
        raw = redis_client.mget(self.redis, keys + meta_keys)
        current = [self._existing(k, v) for k, v in zip(keys, raw[: len(users)], strict=True)]
        metas = [decode_sequence_meta(m, len(c)) for m, c in zip(raw[len(users) :], current, strict=True)]
        merged = merge_sequence_states(
            current,
            items,
            inverse,
            self.config.seq_cap,
            existing_last=[m[0] for m in metas],
            watermarks=np.array([m[1] for m in metas], dtype=np.int64),
        )
        pipe = self.redis.pipeline(transaction=False)
        for i, (key, meta_key) in enumerate(zip(keys, meta_keys, strict=True)):
            pipe.set(key, encode_sequence(merged.items[i]))
            pipe.set(meta_key, encode_sequence_meta(merged.last_ms[i], int(merged.watermark[i])))
        pipe.execute()

    def _existing(self, key: str, raw: bytes | None) -> np.ndarray:
        try:
            return decode_sequence(raw)
        except ValueError:  # a corrupt value must not block the partition: start the user afresh
            log.warning("corrupt action sequence replaced", extra={"key": key})
            return decode_sequence(None)
