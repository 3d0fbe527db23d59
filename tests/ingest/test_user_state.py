"""user_state codecs (pure) and readers against the real Redis (sync and asyncio)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from foryou.core import user_state as us
from protos import events_pb2


def _items(rows: list[tuple[int, int, int, int, int, int]]) -> np.ndarray:
    a = np.array(rows, dtype=np.int64).reshape(-1, 6)
    return us.sequence_items(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5])


def test_keys_use_prefix() -> None:
    assert us.seq_key(7, "x:") == "x:seq:7"
    assert us.post_key(9) == "fy:post:9"
    assert us.author_key(3, "p:") == "p:author:3"
    assert us.social_key("following", 5, "p:") == "p:following:5"
    with pytest.raises(ValueError):
        us.social_key("friends", 5)


def test_sequence_merges_actions_of_one_impression() -> None:
    ev = _items(
        [
            (100, 7, 1000, 1, 1_000, 0),  # impression
            (100, 7, 1, 1, 1_500, 0),  # fav
            (100, 7, 11, 1, 1_600, 12_000),  # dwelled
            (200, 8, 1000, 15, 2_000, 0),
            (200, 8, 12, 15, 2_100, 0),
        ]
    )
    seq = us.merge_sequence(us.empty_sequence(), ev)
    assert seq["post_id"].tolist() == [100, 200]
    assert seq["action_mask"].tolist() == [(1 << 1) | (1 << 11), 1 << 12]
    assert seq["timestamp_ms"].tolist() == [1_000, 2_000]
    assert seq["dwell_ms"].tolist() == [12_000, 0]
    assert seq["product_surface"].tolist() == [1, 15]
    # replay (whole or partial) is a no-op; order of arrival does not matter
    assert np.array_equal(us.merge_sequence(seq, ev), seq)
    assert np.array_equal(us.merge_sequence(seq, ev[2:3]), seq)
    assert np.array_equal(us.merge_sequence(us.empty_sequence(), ev[::-1]), seq)
    # codec round trip
    raw = us.encode_sequence(seq)
    assert len(raw) == 2 * us.SEQ_DTYPE.itemsize
    assert np.array_equal(us.decode_sequence(raw), seq)
    assert len(us.decode_sequence(None)) == 0
    with pytest.raises(ValueError):
        us.decode_sequence(raw[:-1])


def test_sequence_is_capped_to_the_newest() -> None:
    ev = _items([(1000 + i, 5, 1, 1, 10_000 + i, 0) for i in range(300)])
    seq = us.merge_sequence(us.empty_sequence(), ev, cap=128)
    assert len(seq) == 128
    assert seq["post_id"][0] == 1000 + 172 and seq["post_id"][-1] == 1299
    assert (np.diff(seq["timestamp_ms"]) > 0).all()
    # replaying old events after the cap does not bring them back
    assert np.array_equal(us.merge_sequence(seq, ev[:50], cap=128), seq)


def test_action_sequence_to_proto() -> None:
    seq = us.merge_sequence(
        us.empty_sequence(), _items([(100, 7, 1, 1, 1_000, 0), (100, 7, 37, 1, 1_001, 0)])
    )
    proto = us.action_sequence_to_proto(seq)
    assert len(proto.items) == 1
    it = proto.items[0]
    assert (it.post_id, it.author_id, it.action_mask, it.product_surface, it.timestamp_ms) == (
        100,
        7,
        (1 << 1) | (1 << 37),
        1,
        1_000,
    )
    assert np.array_equal(us.action_sequence_from_proto(proto), seq)


def test_post_codec_and_ttl() -> None:
    p = events_pb2.Post(post_id=5, author_id=6, text="hi", labels=["spam"], in_reply_to_post_id=4)
    back = us.decode_post(us.encode_post(p))
    assert back == p and back.HasField("in_reply_to_post_id") and not back.HasField("source_post_id")
    assert us.decode_post(us.TOMBSTONE) is None and us.decode_post(None) is None
    with pytest.raises(ValueError):
        us.encode_post(events_pb2.Post())
    now = 10**13
    assert us.post_ttl_ms(now, now) == us.RETENTION_MS + us.POST_TTL_MARGIN_MS
    assert us.post_ttl_ms(now - 10 * us.RETENTION_MS, now) == us.MIN_POST_TTL_MS


@pytest.mark.integration
def test_readers_sync_and_async(redis_url: str, unique_prefix: str) -> None:
    p = unique_prefix
    r = redis.Redis.from_url(redis_url)
    r.sadd(us.social_key("following", 1, p), 10, 11)
    r.sadd(us.social_key("blocked", 1, p), 12)
    r.sadd(us.social_key("mutedkw", 1, p), "ramen")
    posts = [events_pb2.Post(post_id=100 + i, author_id=10, text=f"t{i}") for i in range(3)]
    for post in posts:
        r.set(us.post_key(post.post_id, p), us.encode_post(post))
    r.set(us.post_key(103, p), us.TOMBSTONE)
    r.hset(us.author_key(10, p), mapping={"screen_name": "ten", "follower_count": 4})
    seq = us.merge_sequence(us.empty_sequence(), _items([(100, 10, 1, 1, 5, 0), (101, 10, 29, 1, 6, 0)]))
    r.set(us.seq_key(1, p), us.encode_sequence(seq))

    g = us.read_social_graph(r, 1, p)
    assert g.following == {10, 11} and g.blocked == {12} and not g.muted and not g.subscriptions
    assert g.muted_keywords == {"ramen"}
    assert us.read_social_graph(r, 2, p) == us.SocialGraph(2)
    assert np.array_equal(us.read_action_sequence(r, 1, p), seq)
    assert len(us.read_action_sequence(r, 2, p)) == 0
    got = us.mget_posts(r, [102, 999, 100, 103], p)
    assert got[0] == posts[2] and got[1] is None and got[2] == posts[0] and got[3] is None
    assert us.mget_authors(r, [10, 11], p) == [us.AuthorData(10, "ten", 4), None]
    reader = us.UserStateReader(r, p)
    assert reader.read_social_graph(1) == g and reader.mget_posts([]) == []

    async def run() -> None:
        ar = aioredis.Redis.from_url(redis_url)
        try:
            areader = us.AsyncUserStateReader(ar, p)
            assert await areader.read_social_graph(1) == g
            assert np.array_equal(await areader.read_action_sequence(1), seq)
            assert await areader.mget_posts([102, 999]) == [posts[2], None]
            assert await areader.mget_authors([10]) == [us.AuthorData(10, "ten", 4)]
        finally:
            await ar.aclose()

    asyncio.run(run())


def _reference_merge(events: list[tuple[int, int, int, int, int, int]], cap: int) -> list[tuple[int, ...]]:
    """Plain-Python model of the merge rules."""
    by_post: dict[int, list[int]] = {}
    for post, author, action, surface, ts, dwell in events:
        bit = 1 << action if 0 < action < 64 else 0
        cur = by_post.get(post)
        if cur is None:
            by_post[post] = [post, author, bit, surface, ts, dwell]
        else:
            cur[2] |= bit
            cur[3] = cur[3] or surface
            cur[4] = min(cur[4], ts)
            cur[5] = max(cur[5], dwell)
    items = sorted(by_post.values(), key=lambda x: (x[4], x[0]))
    return [tuple(x) for x in items[-cap:]]


def test_batch_merge_matches_reference_per_user() -> None:
    rng = np.random.default_rng(1)
    actions = [1000, 1, 4, 11, 12, 29, 37]
    per_user: dict[int, list[tuple[int, int, int, int, int, int]]] = {u: [] for u in range(6)}
    for _ in range(600):
        u = int(rng.integers(0, 6))
        post = int(rng.integers(1, 60))
        per_user[u].append((post, post % 7 + 1, int(rng.choice(actions)), 1, int(rng.integers(1, 10_000)), 0))
    cap = 20
    # first half already stored, second half arrives as one batch for all users
    existing = [
        us.merge_sequence(us.empty_sequence(), _items(ev[: len(ev) // 2]), cap) for ev in per_user.values()
    ]
    new_rows = [(u, e) for u, ev in per_user.items() for e in ev[len(ev) // 2 :]]
    new = _items([e for _, e in new_rows])
    owner = np.array([u for u, _ in new_rows])
    merged = us.merge_sequences(existing, new, owner, cap)
    for u, ev in per_user.items():
        got = [tuple(int(v) for v in row) for row in merged[u].tolist()]
        # what the batch can know: the capped stored half plus the new half
        stored = [(r[0], r[1], 0, r[3], r[4], r[5]) for r in existing[u].tolist()]
        ref_events = [
            *[(p, a, 0, s, t, d) for p, a, _, s, t, d in stored],
            *ev[len(ev) // 2 :],
        ]
        ref = _reference_merge(ref_events, cap)
        masks = {r[0]: int(r[2]) for r in existing[u].tolist()}
        ref = [(p, a, m | masks.get(p, 0), s, t, d) for p, a, m, s, t, d in ref]
        assert got == ref, u
        assert len(got) <= cap


def _replay_one_by_one(events: np.ndarray, cap: int, state: tuple | None = None) -> tuple:
    """Apply events one per batch through the ingester's state (items, last_ms, watermark)."""
    items, last, wm = state or (us.empty_sequence(), None, us.NO_WATERMARK)
    for i in range(len(events)):
        m = us.merge_sequence_states([items], events[i : i + 1], np.zeros(1, np.int64), cap, [last], [wm])
        items, wm = m.items[0], int(m.watermark[0])
        last, wm = us.decode_sequence_meta(us.encode_sequence_meta(m.last_ms[0], wm), len(items))
    return items, last, wm


def test_replay_cannot_bring_back_an_evicted_item() -> None:
    # cap 3: A is impressed at 100 and faved at 125, then D (130) pushes A out of the window
    ev = _items(
        [
            (1, 7, 1000, 1, 100, 0),  # A impression
            (2, 7, 1000, 1, 110, 0),  # B
            (3, 7, 1000, 1, 120, 0),  # C
            (1, 7, 1, 1, 125, 0),  # A fav (after B and C)
            (4, 7, 1000, 1, 130, 0),  # D evicts A
        ]
    )
    first = _replay_one_by_one(ev, cap=3)
    assert first[0]["post_id"].tolist() == [2, 3, 4]
    assert first[2] == 125  # the watermark is A's latest event
    # replayed one event per batch, the late fav of A would re-enter A (key 125 > B's 110) without
    # the watermark; with it the state is unchanged
    again = _replay_one_by_one(ev, cap=3, state=first)
    assert np.array_equal(again[0], first[0]) and again[2] == first[2]
    assert np.array_equal(again[1], first[1])
    without_watermark = us.merge_sequences([first[0]], ev[3:4], np.zeros(1, np.int64), 3)[0]
    assert without_watermark["post_id"].tolist() != [2, 3, 4]  # the case the watermark exists for
    # a genuinely new event newer than the watermark still enters
    newer = _replay_one_by_one(_items([(5, 7, 1000, 1, 140, 0)]), cap=3, state=first)
    assert newer[0]["post_id"].tolist() == [3, 4, 5]


def test_replay_of_demo_sized_log_in_small_batches_is_idempotent() -> None:
    from world import WorldConfig, generate_world

    w = generate_world(WorldConfig.tiny(seed=2, n_users=40, n_impressions=12_000))
    e = w.engagements
    cols = [e[c].to_numpy().astype(np.int64) for c in ("user_id", "post_id", "author_id", "action")]
    cols += [e[c].to_numpy().astype(np.int64) for c in ("product_surface", "timestamp_ms", "dwell_ms")]
    state: dict[int, tuple] = {}

    def run(batch: int) -> None:
        for s in range(0, len(cols[0]), batch):
            sl = slice(s, s + batch)
            users, inv = np.unique(cols[0][sl], return_inverse=True)
            items = us.sequence_items(*(c[sl] for c in cols[1:]))
            cur = [state.get(int(u), (us.empty_sequence(), None, us.NO_WATERMARK)) for u in users]
            m = us.merge_sequence_states(
                [c[0] for c in cur], items, inv, 32, [c[1] for c in cur], np.array([c[2] for c in cur])
            )
            for i, u in enumerate(users):
                state[int(u)] = (m.items[i], m.last_ms[i], int(m.watermark[i]))

    run(23)
    first = {u: (v[0].copy(), v[2]) for u, v in state.items()}
    assert sum(len(v[0]) == 32 for v in first.values()) > 30  # the cap is exercised
    run(23)
    for u, (items, wm) in first.items():
        assert np.array_equal(state[u][0], items) and state[u][2] == wm, u
