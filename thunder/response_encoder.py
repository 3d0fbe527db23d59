"""GetInNetworkPostsResponse wire bytes from a QueryResult's columns, vectorised.

Building 1,200 `LightPost` messages field by field costs ~1.4 ms in Python; protobuf parses the
same posts from bytes in ~0.03 ms. So the handler writes the wire format with numpy (every field
of every post at once) and parses it once. Proto3 rules: a field is written iff it is non-zero
(0 = absent for the optional ids, false bools and zero scalars are omitted), in field-number
order; int64 as two's-complement varints."""

from __future__ import annotations

import numpy as np

from thunder.store import HAS_VIDEO, IS_REPLY, IS_RETWEET

# LightPost fields in number order: (field number, column name or flag bit)
_FIELDS: tuple[tuple[int, str | int], ...] = (
    (1, "post_id"),
    (2, "author_id"),
    (3, "created_at"),
    (4, "in_reply_to_post_id"),
    (5, "in_reply_to_user_id"),
    (6, IS_RETWEET),
    (7, IS_REPLY),
    (8, "source_post_id"),
    (9, "source_user_id"),
    (10, HAS_VIDEO),
    (11, "conversation_id"),
)
_TAGS = np.array([(number << 3) | 0 for number, _ in _FIELDS], np.uint8)  # varint wire type
_POSTS_TAG = 0x0A  # GetInNetworkPostsResponse.posts: field 1, length-delimited
_BYTE = np.arange(10)
_SHIFT = (7 * np.arange(10)).astype(np.uint64)
_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], np.uint64)


def _varint_len(v: np.ndarray) -> np.ndarray:
    """Bytes of each uint64's varint (1-10)."""
    return 1 + np.searchsorted(_LIMITS, v, side="right")


def _put_varints(out: np.ndarray, at: np.ndarray, v: np.ndarray, length: np.ndarray) -> None:
    """Write each uint64 as a varint of `length` bytes at `at`: one unmasked block per length."""
    for n in np.unique(length).tolist():
        sel = np.flatnonzero(length == n)
        groups = ((v[sel, None] >> _SHIFT[:n]) & np.uint64(0x7F)).astype(np.uint8)
        groups[:, : n - 1] |= 0x80  # continuation bit on all but the last byte
        out[at[sel, None] + _BYTE[:n]] = groups


def encode_response(columns: dict[str, np.ndarray]) -> bytes:
    """Serialized GetInNetworkPostsResponse with one LightPost per row of `columns` (the
    QueryResult columns: int64 fields and the flags byte), in row order."""
    n = len(columns["post_id"])
    if not n:
        return b""
    flags = columns["flags"]
    vals = np.empty((len(_FIELDS), n), np.uint64)
    for f, (_, src) in enumerate(_FIELDS):
        if isinstance(src, str):
            vals[f] = columns[src].view(np.uint64)
        else:
            vals[f] = (flags & src) != 0
    present = vals != 0
    vlen = _varint_len(vals)
    size = np.where(present, 1 + vlen, 0)  # tag byte (fields < 16) + value
    body = size.sum(axis=0)
    head = 1 + _varint_len(body.astype(np.uint64))
    start = np.cumsum(head + body) - (head + body)
    out = np.zeros(int((head + body).sum()), np.uint8)
    out[start] = _POSTS_TAG
    _put_varints(out, start + 1, body.astype(np.uint64), head - 1)
    field_at = start + head + (np.cumsum(size, axis=0) - size)  # (fields, posts)
    f_idx, p_idx = np.nonzero(present)
    at = field_at[f_idx, p_idx]
    out[at] = _TAGS[f_idx]
    _put_varints(out, at + 1, vals[f_idx, p_idx], vlen[f_idx, p_idx])
    return out.tobytes()
