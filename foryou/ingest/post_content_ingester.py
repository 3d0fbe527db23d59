"""posts -> Redis post core data: one protobuf Post per key with a TTL past retention (hydrating
2,000 candidates is one MGET). Posts are immutable, so creates are SET NX: a replayed create never
overwrites, and never resurrects a deleted post (deletes leave an empty tombstone)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from foryou.core.events import RETENTION_MS, decode_post_event
from foryou.core.kafka import Decoded
from foryou.core.snowflake import timestamp_ms
from foryou.core.user_state import POST_TTL_MARGIN_MS, TOMBSTONE, encode_post, post_key, post_ttl_ms
from foryou.ingest.redis_ingester import RedisIngester
from protos import events_pb2 as ev

# no post outlives retention: an id a little ahead of this clock (allowed skew) must not extend it
MAX_POST_TTL_MS = RETENTION_MS + POST_TTL_MARGIN_MS


def _ttl(post_id: int, now_ms: int) -> int:
    return min(MAX_POST_TTL_MS, post_ttl_ms(timestamp_ms(post_id), now_ms))


class PostContentIngester(RedisIngester[ev.PostEvent]):
    name = "post-content"
    logical_topic = "posts_topic"

    def decode(self, raw: bytes) -> ev.PostEvent:
        # id ranges (a snowflake from the far future would live for decades): foryou.core.events
        return decode_post_event(raw)

    def apply(self, batch: Sequence[Decoded[ev.PostEvent]]) -> None:
        now = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        for d in batch:
            e = d.value
            if e.WhichOneof("event") == "create":
                post = e.create
                ttl = _ttl(post.post_id, now)
                pipe.set(post_key(post.post_id, self.prefix), encode_post(post), px=ttl, nx=True)
            else:
                ttl = _ttl(e.delete.post_id, now)
                pipe.set(post_key(e.delete.post_id, self.prefix), TOMBSTONE, px=ttl)
        pipe.execute()
