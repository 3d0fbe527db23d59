"""User state in Redis, written by the ingesters and read by home_mixer / phoenix: key layout,
codecs, and sync + asyncio readers (each read is one round trip).

Keys (prefix = Settings.redis_prefix, default "fy:"):
  {p}following:{u} {p}blocked:{u} {p}muted:{u} {p}subs:{u}   SET of user ids
  {p}mutedkw:{u}                                             SET of lower-cased keywords
  {p}followers:{a}                                           SET of follower ids (source of follower_count)
  {p}seq:{u}     packed numpy structured array (SEQ_DTYPE), oldest first, capped
  {p}seqmeta:{u} ingester bookkeeping for replay-safe eviction (int64 watermark + per-item last event)
  {p}post:{id}   protobuf Post bytes; b"" = deleted (tombstone); TTL past retention
  {p}author:{id} HASH screen_name, follower_count
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import redis
import redis.asyncio as aioredis

from foryou.core import redis_client
from foryou.core.events import RETENTION_MS
from protos import events_pb2, phoenix_pb2

DEFAULT_PREFIX = "fy:"
DEFAULT_SEQ_CAP = 128
POST_TTL_MARGIN_MS = 2 * 3_600_000
MIN_POST_TTL_MS = 3_600_000
TOMBSTONE = b""

SEQ_DTYPE = np.dtype(
    [
        ("post_id", "<i8"),
        ("author_id", "<i8"),
        ("action_mask", "<u8"),
        ("product_surface", "<i4"),
        ("timestamp_ms", "<i8"),
        ("dwell_ms", "<i8"),
    ]
)
GRAPH_KINDS = ("following", "blocked", "muted", "subs")


# --- keys ---


def social_key(kind: str, user_id: int, prefix: str = DEFAULT_PREFIX) -> str:
    if kind not in (*GRAPH_KINDS, "mutedkw", "followers"):
        raise ValueError(f"unknown social-graph kind {kind!r}")
    return f"{prefix}{kind}:{user_id}"


def seq_key(user_id: int, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}seq:{user_id}"


def seq_meta_key(user_id: int, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}seqmeta:{user_id}"


def post_key(post_id: int, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}post:{post_id}"


def author_key(author_id: int, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}author:{author_id}"


# --- values ---


@dataclass(frozen=True, slots=True)
class SocialGraph:
    user_id: int
    following: frozenset[int] = field(default_factory=frozenset)
    blocked: frozenset[int] = field(default_factory=frozenset)
    muted: frozenset[int] = field(default_factory=frozenset)
    subscriptions: frozenset[int] = field(default_factory=frozenset)
    muted_keywords: frozenset[str] = field(default_factory=frozenset)


PostCore = events_pb2.Post  # the packed post core data is the Post protobuf itself


@dataclass(frozen=True, slots=True)
class AuthorData:
    author_id: int
    screen_name: str
    follower_count: int


def encode_post(post: events_pb2.Post) -> bytes:
    if post.post_id == 0:
        raise ValueError("post without post_id")
    return post.SerializeToString()


# A stored value as our Redis clients return it: they never set decode_responses, so a reply is bytes
# (None for a missing key); redis' types also allow str, for clients that decode.
Raw = bytes | None


def decode_post(raw: bytes | None) -> events_pb2.Post | None:
    """None for a missing or deleted post."""
    if not raw:
        return None
    return events_pb2.Post.FromString(raw)


def post_ttl_ms(created_at_ms: int, now_ms: int) -> int:
    """Keep a post until retention (plus a margin) has passed since its creation, at least an hour."""
    return max(MIN_POST_TTL_MS, created_at_ms + RETENTION_MS + POST_TTL_MARGIN_MS - now_ms)


def empty_sequence() -> np.ndarray:
    return np.zeros(0, dtype=SEQ_DTYPE)


def encode_sequence(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr, dtype=SEQ_DTYPE).tobytes()


def decode_sequence(raw: bytes | None) -> np.ndarray:
    if not raw:
        return empty_sequence()
    if len(raw) % SEQ_DTYPE.itemsize:
        raise ValueError(f"action sequence of {len(raw)} bytes is not a multiple of {SEQ_DTYPE.itemsize}")
    return np.frombuffer(raw, dtype=SEQ_DTYPE).copy()


def action_bit(action: int) -> int:
    """Bit of an action in action_mask; 0 for actions outside the 64 heads (e.g. IMPRESSION)."""
    return 1 << action if 0 < action < 64 else 0


def sequence_items(
    post_id: np.ndarray,
    author_id: np.ndarray,
    action: np.ndarray,
    product_surface: np.ndarray,
    timestamp_ms: np.ndarray,
    dwell_ms: np.ndarray,
) -> np.ndarray:
    """One unmerged sequence item per engagement event (an IMPRESSION row gives mask 0)."""
    action = np.asarray(action, dtype=np.int64)
    in_range = (action > 0) & (action < 64)
    mask = np.where(in_range, np.left_shift(np.uint64(1), np.where(in_range, action, 0).astype(np.uint64)), 0)
    out = np.zeros(len(action), dtype=SEQ_DTYPE)
    out["post_id"] = post_id
    out["author_id"] = author_id
    out["action_mask"] = mask.astype(np.uint64)
    out["product_surface"] = product_surface
    out["timestamp_ms"] = timestamp_ms
    out["dwell_ms"] = dwell_ms
    return out


def merge_sequence(existing: np.ndarray, new: np.ndarray, cap: int = DEFAULT_SEQ_CAP) -> np.ndarray:
    """Merge events into one user's sequence (see `merge_sequences`)."""
    if len(new) == 0 and len(existing) <= cap:
        return existing
    return merge_sequences([existing], new, np.zeros(len(new), dtype=np.int64), cap)[0]


def merge_sequences(
    existing: Sequence[np.ndarray], new: np.ndarray, owner: np.ndarray, cap: int = DEFAULT_SEQ_CAP
) -> list[np.ndarray]:
    """Merge new events into many users' sequences at once (`owner[i]` = index into `existing` of
    event i); items only, without the eviction bookkeeping of `merge_sequence_states`."""
    return merge_sequence_states(existing, new, owner, cap).items


@dataclass(slots=True)
class MergedSequences:
    items: list[np.ndarray]  # per user, SEQ_DTYPE, oldest first
    last_ms: list[np.ndarray]  # per user, aligned with items: the item's latest event time
    watermark: np.ndarray  # per user: latest event time of any item evicted so far (NO_WATERMARK: none)


NO_WATERMARK = np.iinfo(np.int64).min


def _empty_merge(n_users: int, wm: np.ndarray) -> MergedSequences:
    return MergedSequences(
        [empty_sequence() for _ in range(n_users)], [np.zeros(0, np.int64) for _ in range(n_users)], wm
    )


def merge_sequence_states(
    existing: Sequence[np.ndarray],
    new: np.ndarray,
    owner: np.ndarray,
    cap: int = DEFAULT_SEQ_CAP,
    existing_last: Sequence[np.ndarray | None] | None = None,
    watermarks: np.ndarray | None = None,
) -> MergedSequences:
    """Per user: one item per post (the actions of one impression OR-ed into one mask, earliest
    timestamp, longest dwell, first non-zero surface), oldest first, the newest `cap` kept.

    Replay-safe: OR / min / max make re-applying events of a stored item a no-op, and an event of a
    post that is not stored is dropped when it is not newer than the user's watermark (the latest
    event time of any evicted item): every event already seen of an evicted item is at or below it,
    so a replay cannot bring an evicted item back (e.g. a late fav of an impression that was pushed
    out of the window in an earlier batch)."""
    n_users = len(existing)
    lens = np.array([len(e) for e in existing], dtype=np.int64)
    wm = (
        np.full(n_users, NO_WATERMARK, dtype=np.int64)
        if watermarks is None
        else np.asarray(watermarks, dtype=np.int64).copy()
    )
    parts = [e.astype(SEQ_DTYPE, copy=False) for e in existing if len(e)]
    lasts = [
        np.asarray(given, dtype=np.int64)
        if existing_last is not None and (given := existing_last[i]) is not None and len(given) == len(e)
        else e["timestamp_ms"].astype(np.int64)
        for i, e in enumerate(existing)
        if len(e)
    ]
    new = new.astype(SEQ_DTYPE, copy=False)
    items = np.concatenate([*parts, new])
    last = np.concatenate([*lasts, new["timestamp_ms"].astype(np.int64)])
    is_old = np.r_[np.ones(int(lens.sum()), dtype=bool), np.zeros(len(new), dtype=bool)]
    own = np.concatenate(
        [np.repeat(np.arange(n_users, dtype=np.int64), lens), np.asarray(owner, dtype=np.int64)]
    )
    if len(items) == 0:
        return _empty_merge(n_users, wm)
    order = np.lexsort((items["timestamp_ms"], items["post_id"], own))
    s, so, sl, sold = items[order], own[order], last[order], is_old[order]
    starts = np.flatnonzero(np.r_[True, (so[1:] != so[:-1]) | (s["post_id"][1:] != s["post_id"][:-1])])
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(s)]))
    stored = np.maximum.reduceat(sold.astype(np.int8), starts).astype(bool)[group]
    ok = sold | stored | (s["timestamp_ms"] > wm[so])
    if not ok.all():
        s, so, sl = s[ok], so[ok], sl[ok]
        if len(s) == 0:
            return _empty_merge(n_users, wm)
        starts = np.flatnonzero(np.r_[True, (so[1:] != so[:-1]) | (s["post_id"][1:] != s["post_id"][:-1])])
    merged = s[starts].copy()  # earliest event of each (user, post)
    mo = so[starts]
    merged["action_mask"] = np.bitwise_or.reduceat(s["action_mask"], starts)
    merged["dwell_ms"] = np.maximum.reduceat(s["dwell_ms"], starts)
    merged["author_id"] = np.maximum.reduceat(s["author_id"], starts)
    mlast = np.maximum.reduceat(np.maximum(sl, s["timestamp_ms"]), starts)
    big = np.iinfo(np.int32).max
    surf = np.where(s["product_surface"] > 0, s["product_surface"], big)
    first_surface = np.minimum.reduceat(surf, starts)  # surfaces agree within an impression
    merged["product_surface"] = np.where(first_surface == big, 0, first_surface)
    order = np.lexsort((merged["post_id"], merged["timestamp_ms"], mo))
    merged, mo, mlast = merged[order], mo[order], mlast[order]
    ends = np.cumsum(np.bincount(mo, minlength=n_users))
    keep = ends[mo] - np.arange(len(mo)) <= cap  # position from each user's end
    np.maximum.at(wm, mo[~keep], mlast[~keep])
    merged, mo, mlast = merged[keep], mo[keep], mlast[keep]
    splits = np.cumsum(np.bincount(mo, minlength=n_users))[:-1]
    return MergedSequences(np.split(merged, splits), np.split(mlast, splits), wm)


def encode_sequence_meta(last_ms: np.ndarray, watermark: int) -> bytes:
    """Ingester bookkeeping beside `{p}seq:{u}` (readers never need it): int64 [watermark, last_ms...]."""
    return np.r_[np.int64(watermark), np.asarray(last_ms, dtype=np.int64)].astype("<i8").tobytes()


def decode_sequence_meta(raw: bytes | None, n_items: int) -> tuple[np.ndarray | None, int]:
    """(last_ms aligned with the n_items stored items or None, watermark); tolerant of a missing or
    stale value (then the items' own timestamps stand in and there is no watermark)."""
    if not raw or len(raw) % 8:
        return None, int(NO_WATERMARK)
    a = np.frombuffer(raw, dtype="<i8")
    return (a[1:].copy() if len(a) - 1 == n_items else None), int(a[0])


def action_sequence_to_proto(arr: np.ndarray) -> phoenix_pb2.ActionSequence:
    seq = phoenix_pb2.ActionSequence()
    for p, a, m, s, t, d in zip(
        arr["post_id"].tolist(),
        arr["author_id"].tolist(),
        arr["action_mask"].tolist(),
        arr["product_surface"].tolist(),
        arr["timestamp_ms"].tolist(),
        arr["dwell_ms"].tolist(),
        strict=True,
    ):
        seq.items.add(post_id=p, author_id=a, action_mask=m, product_surface=s, timestamp_ms=t, dwell_ms=d)
    return seq


to_proto = action_sequence_to_proto  # short name used by readers


def action_sequence_from_proto(seq: phoenix_pb2.ActionSequence) -> np.ndarray:
    out = np.zeros(len(seq.items), dtype=SEQ_DTYPE)
    for i, it in enumerate(seq.items):
        out[i] = (it.post_id, it.author_id, it.action_mask, it.product_surface, it.timestamp_ms, it.dwell_ms)
    return out


# --- readers: commands queued on a pipeline, then decoded (shared by sync and async) ---


def _queue_social_graph(pipe: Any, user_id: int, prefix: str) -> None:
    for kind in (*GRAPH_KINDS, "mutedkw"):
        pipe.smembers(social_key(kind, user_id, prefix))


def _decode_social_graph(user_id: int, res: Sequence[Any]) -> SocialGraph:
    following, blocked, muted, subs, kws = res
    ids = [frozenset(int(x) for x in s) for s in (following, blocked, muted, subs)]
    words = frozenset(x.decode() if isinstance(x, bytes) else str(x) for x in kws)
    return SocialGraph(user_id, ids[0], ids[1], ids[2], ids[3], words)


def _queue_authors(pipe: Any, ids: Sequence[int], prefix: str) -> None:
    for a in ids:
        pipe.hmget(author_key(a, prefix), "screen_name", "follower_count")


def _decode_authors(ids: Sequence[int], res: Sequence[Any]) -> list[AuthorData | None]:
    out: list[AuthorData | None] = []
    for aid, (name, count) in zip(ids, res, strict=True):
        if name is None and count is None:
            out.append(None)
            continue
        sname = name.decode() if isinstance(name, bytes) else (name or "")
        out.append(AuthorData(int(aid), sname, int(count or 0)))
    return out


def read_social_graph(r: redis.Redis, user_id: int, prefix: str = DEFAULT_PREFIX) -> SocialGraph:
    pipe = r.pipeline(transaction=False)
    _queue_social_graph(pipe, user_id, prefix)
    return _decode_social_graph(user_id, pipe.execute())


def read_action_sequence(r: redis.Redis, user_id: int, prefix: str = DEFAULT_PREFIX) -> np.ndarray:
    return decode_sequence(cast(Raw, r.get(seq_key(user_id, prefix))))


def mget_posts_raw(
    r: redis.Redis, post_ids: Iterable[int], prefix: str = DEFAULT_PREFIX
) -> list[bytes | None]:
    keys = [post_key(p, prefix) for p in post_ids]
    return cast(list[Raw], redis_client.mget(r, keys))  # by slot on a cluster


def mget_posts(
    r: redis.Redis, post_ids: Iterable[int], prefix: str = DEFAULT_PREFIX
) -> list[events_pb2.Post | None]:
    """Posts in the order asked, None where missing or deleted: one MGET."""
    return [decode_post(v) for v in mget_posts_raw(r, post_ids, prefix)]


def mget_authors(
    r: redis.Redis, author_ids: Iterable[int], prefix: str = DEFAULT_PREFIX
) -> list[AuthorData | None]:
    ids = list(author_ids)
    pipe = r.pipeline(transaction=False)
    _queue_authors(pipe, ids, prefix)
    return _decode_authors(ids, pipe.execute() if ids else [])


async def async_read_social_graph(
    r: aioredis.Redis, user_id: int, prefix: str = DEFAULT_PREFIX
) -> SocialGraph:
    pipe = r.pipeline(transaction=False)
    _queue_social_graph(pipe, user_id, prefix)
    return _decode_social_graph(user_id, await pipe.execute())


async def async_read_action_sequence(
    r: aioredis.Redis, user_id: int, prefix: str = DEFAULT_PREFIX
) -> np.ndarray:
    return decode_sequence(cast(Raw, await r.get(seq_key(user_id, prefix))))


async def async_mget_posts(
    r: aioredis.Redis, post_ids: Iterable[int], prefix: str = DEFAULT_PREFIX
) -> list[events_pb2.Post | None]:
    keys = [post_key(p, prefix) for p in post_ids]
    return [decode_post(v) for v in await redis_client.amget(r, keys)]  # by slot on a cluster


async def async_mget_authors(
    r: aioredis.Redis, author_ids: Iterable[int], prefix: str = DEFAULT_PREFIX
) -> list[AuthorData | None]:
    ids = list(author_ids)
    pipe = r.pipeline(transaction=False)
    _queue_authors(pipe, ids, prefix)
    return _decode_authors(ids, await pipe.execute() if ids else [])


class UserStateReader:
    """Sync reader bound to one client and prefix."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client, self.prefix = client, prefix

    def read_social_graph(self, user_id: int) -> SocialGraph:
        return read_social_graph(self.client, user_id, self.prefix)

    def read_action_sequence(self, user_id: int) -> np.ndarray:
        return read_action_sequence(self.client, user_id, self.prefix)

    def mget_posts(self, post_ids: Iterable[int]) -> list[events_pb2.Post | None]:
        return mget_posts(self.client, post_ids, self.prefix)

    def mget_authors(self, author_ids: Iterable[int]) -> list[AuthorData | None]:
        return mget_authors(self.client, author_ids, self.prefix)


class AsyncUserStateReader:
    """asyncio reader (redis.asyncio) bound to one client and prefix."""

    def __init__(self, client: aioredis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client, self.prefix = client, prefix

    async def read_social_graph(self, user_id: int) -> SocialGraph:
        return await async_read_social_graph(self.client, user_id, self.prefix)

    async def read_action_sequence(self, user_id: int) -> np.ndarray:
        return await async_read_action_sequence(self.client, user_id, self.prefix)

    async def mget_posts(self, post_ids: Iterable[int]) -> list[events_pb2.Post | None]:
        return await async_mget_posts(self.client, post_ids, self.prefix)

    async def mget_authors(self, author_ids: Iterable[int]) -> list[AuthorData | None]:
        return await async_mget_authors(self.client, author_ids, self.prefix)
