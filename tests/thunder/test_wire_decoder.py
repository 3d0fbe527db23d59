"""The vectorised PostEvent decoder against upb (`vectorised=False`) on random, unusual and
malformed messages: same creates (same order), deletes and malformed indices with reasons."""

from __future__ import annotations

import random

import numpy as np

from protos import events_pb2 as ev
from thunder.ingest import decode_post_events
from thunder.wire_decoder import decode_create_columns

INT_FIELDS = (
    "post_id",
    "author_id",
    "created_at",
    "in_reply_to_post_id",
    "in_reply_to_user_id",
    "source_post_id",
    "source_user_id",
    "conversation_id",
    "video_duration_ms",
    "quoted_post_id",
    "quoted_user_id",
)
BOOL_FIELDS = ("is_retweet", "is_reply", "has_video", "subscriber_only")


def _int(rng: random.Random) -> int:
    return rng.choice(
        [0, 1, 127, 128, 300, rng.randint(1, 2**31), rng.randint(1, 2**63 - 1), -rng.randint(1, 2**63)]
    )


def _post(rng: random.Random) -> ev.Post:
    p = ev.Post()
    for name in INT_FIELDS:
        if rng.random() < 0.5:
            setattr(p, name, _int(rng))
    for name in BOOL_FIELDS:
        if rng.random() < 0.3:
            setattr(p, name, True)
    if rng.random() < 0.7:
        p.text = rng.choice(["", "x" * rng.randint(1, 300), "plain text", "a", "héllo ✓"])
    p.labels.extend(rng.choice(["spam", "nsfw", "", "ünï"]) for _ in range(rng.choice([0, 0, 1, 3])))
    return p


def _raw_text(text: bytes) -> bytes:
    """A create whose Post has post_id 1, author_id 2 and these raw text bytes."""
    inner = b"\x08\x01\x10\x02\x62" + bytes([len(text)]) + text
    return b"\x0a" + bytes([len(inner)]) + inner


# valid and invalid UTF-8: 2/3/4-byte forms; overlong, surrogate, past U+10FFFF, truncated, stray
TEXTS = [
    "é✓🙂".encode(),
    b"\xc3\xa9",
    b"\xf0\x9f\x99\x82",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
    b"\x80abc",
    b"ok\xff",
]


def _message(rng: random.Random) -> bytes | None:
    r = rng.random()
    create = ev.PostEvent(create=_post(rng)).SerializeToString()
    if r < 0.6:
        return create
    if r < 0.68:
        return ev.PostEvent(
            delete=ev.PostDelete(post_id=_int(rng), deleted_at_ms=rng.randint(0, 2**41))
        ).SerializeToString()
    if r < 0.74:
        return create[: rng.randint(0, max(0, len(create) - 1))]  # truncated
    if r < 0.78:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))  # garbage
    if r < 0.82:
        return create + ev.PostEvent(create=_post(rng)).SerializeToString()  # two creates: merged
    if r < 0.86:
        inner = ev.Post(post_id=5, author_id=6).SerializeToString() + b"\xa0\x01\x07"  # unknown field 20
        return b"\x0a" + bytes([len(inner)]) + inner
    if r < 0.9:
        return b"\x0a\x03\x0a\x01\x01"[:5]  # post_id with the wrong wire type
    if r < 0.93:
        return b"\x0a\x02\xff\xff"  # invalid text-less tag bytes
    if r < 0.96:
        return rng.choice([b"", None, b"\x0a\x00", _raw_text(rng.choice(TEXTS))])
    return b"\x0a\x05\x62\x03\xe2\x28\xa1"  # text with invalid UTF-8


def _same(values: list[bytes | None]) -> None:
    fast, fast_bad = decode_post_events(values)
    ref, ref_bad = decode_post_events(values, vectorised=False)
    assert np.array_equal(fast.creates, ref.creates)
    assert fast.deletes == ref.deletes
    assert sorted(fast_bad) == sorted(ref_bad)


def test_vectorised_decoder_matches_upb_on_random_batches() -> None:
    rng = random.Random(7)
    for _ in range(30):
        _same([_message(rng) for _ in range(rng.randint(1, 120))])


def test_plain_creates_are_decoded_without_upb_and_unusual_ones_are_not() -> None:
    plain = ev.PostEvent(create=ev.Post(post_id=2**62 + 5, author_id=3, created_at=1_800_000_000, text="hi"))
    reply = ev.PostEvent(
        create=ev.Post(
            post_id=9, author_id=4, in_reply_to_post_id=2, is_reply=True, conversation_id=2, labels=["a"]
        )
    )
    unicode_text = ev.PostEvent(create=ev.Post(post_id=10, author_id=4, text="é ✓ 🙂"))
    delete = ev.PostEvent(delete=ev.PostDelete(post_id=9))
    values = [m.SerializeToString() for m in (plain, reply, unicode_text, delete)]
    values.append(_raw_text(b"\xed\xa0\x80"))  # a surrogate: not UTF-8
    cols, decoded = decode_create_columns(values)
    assert decoded.tolist() == [True, True, True, False, False]
    assert cols[0, :3].tolist() == [2**62 + 5, 3, 1_800_000_000]
    assert cols[1].tolist() == [9, 4, 0, 2, 0, 0, 0, 2, 0, 1, 0, 0]
    _same(values)


def test_vectorised_decoder_matches_upb_on_corrupted_creates() -> None:
    rng = random.Random(3)
    for _ in range(40):
        values = []
        for _ in range(30):
            b = bytearray(ev.PostEvent(create=_post(rng)).SerializeToString())
            for _ in range(rng.randint(0, 3)):  # flip random bytes
                b[rng.randrange(len(b))] = rng.randrange(256)
            values.append(bytes(b))
        _same(values)
