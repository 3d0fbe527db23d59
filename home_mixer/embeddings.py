"""Post embeddings for the DPP kernel. The reference looks posts up (by original post id) in a
multimodal embedding store; ours is computed from the post's text: a signed feature-hashing bag of
words (lower-cased words and numbers, @mentions and "rt" dropped), L2-normalised, `dim` coordinates. The
synthetic world writes topic words into its post text, so posts on one topic point the same way.
A post without words (media-only) gets a deterministic splitmix64 vector of its original id (the
X3 variant of the reference's missing-embedding fallback: reproducible, near-orthogonal to all)."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_MENTION = re.compile(r"@\w+")
_STOP = frozenset({"rt"})
_MASK64 = (1 << 64) - 1


@lru_cache(maxsize=65_536)
def _feature(word: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return h % dim, 1.0 if (h >> 63) & 1 else -1.0


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def fallback_embedding(post_id: int, dim: int) -> np.ndarray:
    """Unit vector with coordinates from splitmix64(post_id, i), uniform in [-1, 1] before norming."""
    v = np.array([_splitmix64(post_id * 1_000_003 + i) / _MASK64 * 2 - 1 for i in range(dim)])
    return v / np.linalg.norm(v)


def text_embedding(text: str, post_id: int, dim: int) -> np.ndarray:
    """Unit vector of `text` (see module doc); the fallback vector of `post_id` when it has no words."""
    v = np.zeros(dim)
    for w in _WORD.findall(_MENTION.sub(" ", text.lower())):
        if w in _STOP:
            continue
        i, sign = _feature(w, dim)
        v[i] += sign
    norm = float(np.linalg.norm(v))
    if norm <= 1e-9:
        return fallback_embedding(post_id, dim)
    return v / norm
