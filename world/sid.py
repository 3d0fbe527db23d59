"""Post content for the synthetic world: a "multimodal" vector per post and its
semantic id (SID) by residual k-means (RQ-KMeans).

vector = normalise(topic anchor + 0.35 · author style + 0.15 · per-post jitter), all unit vectors;
SID = one code per level by `phoenix.ranker.sid_builder.rq_kmeans` (the algorithm `foryou index sids`
applies to a real item features table): level l clusters the residuals left by levels < l. Codes
are stored +1 so that 0 means "no SID" (the ranker's SID lookup reads 0 as unknown)."""

from __future__ import annotations

import numpy as np

from phoenix.ranker.sid_builder import codebook_size, rq_kmeans

__all__ = ["codebook_size", "multimodal_vectors", "rq_kmeans"]

STYLE_WEIGHT = 0.35
JITTER_WEIGHT = 0.15


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def multimodal_vectors(
    topic: np.ndarray, author: np.ndarray, n_topics: int, n_authors: int, dim: int, rng: np.random.Generator
) -> np.ndarray:
    """float32 [N, dim] unit vectors of posts with topic index `topic` and author index `author`."""
    anchors = _unit(rng.normal(size=(n_topics, dim)))
    style = _unit(rng.normal(size=(n_authors, dim)))
    jitter = _unit(rng.normal(size=(len(topic), dim)))
    v = anchors[topic] + STYLE_WEIGHT * style[author] + JITTER_WEIGHT * jitter
    return _unit(v).astype(np.float32)
