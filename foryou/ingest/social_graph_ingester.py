"""user-events -> Redis social graph: following / blocked / muted / subscriptions / muted keywords
per user, followers per target (follower_count = SCARD, recomputed server-side) and profiles."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from foryou.core import redis_client
from foryou.core.events import decode_user_event
from foryou.core.kafka import Decoded
from foryou.core.settings import Settings
from foryou.core.user_state import author_key, social_key
from foryou.ingest.redis_ingester import IngestConfig, RedisIngester
from protos import events_pb2 as ev

UE = ev.UserEventType
# event type -> (social-graph set, add?)
EDGE_OPS: dict[int, tuple[str, bool]] = {
    UE.USER_EVENT_FOLLOW: ("following", True),
    UE.USER_EVENT_UNFOLLOW: ("following", False),
    UE.USER_EVENT_BLOCK: ("blocked", True),
    UE.USER_EVENT_UNBLOCK: ("blocked", False),
    UE.USER_EVENT_MUTE: ("muted", True),
    UE.USER_EVENT_UNMUTE: ("muted", False),
    UE.USER_EVENT_SUBSCRIBE: ("subs", True),
    UE.USER_EVENT_UNSUBSCRIBE: ("subs", False),
}
KEYWORD_OPS = {UE.USER_EVENT_MUTED_KEYWORD_ADD: True, UE.USER_EVENT_MUTED_KEYWORD_REMOVE: False}
# follower_count from the followers set, in the same pipeline (idempotent, unlike HINCRBY)
FOLLOWER_COUNT_LUA = "return redis.call('HSET', KEYS[1], 'follower_count', redis.call('SCARD', KEYS[2]))"


def normalize_keyword(keyword: str) -> str:
    return keyword.strip().lower()


class SocialGraphIngester(RedisIngester[ev.UserEvent]):
    name = "social-graph"
    logical_topic = "user_events_topic"

    def __init__(self, settings: Settings, client: redis.Redis, config: IngestConfig | None = None) -> None:
        super().__init__(settings, client, config)
        self._follower_count = self.redis.register_script(FOLLOWER_COUNT_LUA)

    def decode(self, raw: bytes) -> ev.UserEvent:
        # ids, known type, no self-edges, keyword / screen name present: foryou.core.events
        return decode_user_event(raw)

    def apply(self, batch: Sequence[Decoded[ev.UserEvent]]) -> None:
        p = self.prefix
        pipe = self.redis.pipeline(transaction=False)
        targets: set[int] = set()
        for d in batch:
            e = d.value
            if e.type in EDGE_OPS:
                kind, add = EDGE_OPS[e.type]
                key = social_key(kind, e.user_id, p)
                (pipe.sadd if add else pipe.srem)(key, e.target_user_id)
                if kind == "following":
                    followers = social_key("followers", e.target_user_id, p)
                    (pipe.sadd if add else pipe.srem)(followers, e.user_id)
                    targets.add(e.target_user_id)
            elif e.type in KEYWORD_OPS:
                key = social_key("mutedkw", e.user_id, p)
                (pipe.sadd if KEYWORD_OPS[e.type] else pipe.srem)(key, normalize_keyword(e.keyword))
            else:
                pipe.hset(author_key(e.user_id, p), "screen_name", e.screen_name)
        if not redis_client.is_cluster(self.redis):
            for t in sorted(targets):
                self._follower_count(keys=[author_key(t, p), social_key("followers", t, p)], client=pipe)
            pipe.execute()
            return
        # Redis Cluster: the two keys live in different slots, so no script spans them. SCARD in
        # the same pipeline, then HSET: one more round trip (per node). Not atomic with a second
        # ingester replica touching the same target between the two; the next follow event of
        # that target corrects the count (docs/SCALING.md).
        ordered = sorted(targets)
        for t in ordered:
            pipe.scard(social_key("followers", t, p))
        results = pipe.execute()
        counts = results[len(results) - len(ordered) :]
        if ordered:
            write = self.redis.pipeline(transaction=False)
            for t, n in zip(ordered, counts, strict=True):
                write.hset(author_key(t, p), "follower_count", int(n))
            write.execute()
