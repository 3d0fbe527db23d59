"""Snowflake ids: 41 bits of milliseconds since the Twitter epoch, then 22 bits of
worker + sequence. Post age is always read from the id, never from a separate field."""

from __future__ import annotations

import numpy as np

TWITTER_EPOCH_MS = 1288834974657
TIMESTAMP_SHIFT = 22
SEQUENCE_MASK = (1 << TIMESTAMP_SHIFT) - 1


def make_id(timestamp_ms: int, sequence: int = 0) -> int:
    """Snowflake id for a creation time (ms since Unix epoch) and a 22-bit sequence."""
    if timestamp_ms < TWITTER_EPOCH_MS:
        raise ValueError(f"timestamp {timestamp_ms} is before the Twitter epoch")
    if not 0 <= sequence <= SEQUENCE_MASK:
        raise ValueError(f"sequence {sequence} outside [0, {SEQUENCE_MASK}]")
    return ((timestamp_ms - TWITTER_EPOCH_MS) << TIMESTAMP_SHIFT) | sequence


def timestamp_ms(snowflake_id: int) -> int:
    """Creation time in ms since the Unix epoch."""
    return (snowflake_id >> TIMESTAMP_SHIFT) + TWITTER_EPOCH_MS


def created_at_secs(snowflake_id: int) -> int:
    return timestamp_ms(snowflake_id) // 1000


def age_ms(snowflake_id: int, now_ms: int) -> int:
    return now_ms - timestamp_ms(snowflake_id)


def timestamps_ms(ids: np.ndarray) -> np.ndarray:
    """Vectorised `timestamp_ms` over an int64 array."""
    return (np.asarray(ids, dtype=np.int64) >> TIMESTAMP_SHIFT) + TWITTER_EPOCH_MS


def make_ids(timestamps: np.ndarray, sequences: np.ndarray | int = 0) -> np.ndarray:
    """Vectorised `make_id`."""
    ts = np.asarray(timestamps, dtype=np.int64)
    if (ts < TWITTER_EPOCH_MS).any():
        raise ValueError("timestamp before the Twitter epoch")
    seq = np.asarray(sequences, dtype=np.int64)
    if ((seq < 0) | (seq > SEQUENCE_MASK)).any():
        raise ValueError("sequence outside 22 bits")
    return ((ts - TWITTER_EPOCH_MS) << TIMESTAMP_SHIFT) | seq
