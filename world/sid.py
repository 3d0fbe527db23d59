"""Post content for the synthetic world: a "multimodal" vector per post and its
semantic id (SID) by residual k-means (RQ-KMeans).

vector = normalise(topic anchor + 0.35 · author style + 0.15 · per-post jitter), all unit vectors;
SID = one code per level: level l clusters the residuals left by levels < l (FAISS k-means,
15 Lloyd iterations, trained on at most 20,000 posts, then every post encoded). Codes are stored +1
so that 0 means "no SID" (the ranker's SID lookup reads 0 as unknown)."""

from __future__ import annotations

import faiss
import numpy as np

STYLE_WEIGHT = 0.35
JITTER_WEIGHT = 0.15
LLOYD_ITERATIONS = 15
MAX_TRAIN_POINTS = 20_000
# FAISS wants >= 39 training points per centroid; small worlds get a smaller codebook
MIN_POINTS_PER_CENTROID = 39


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


def codebook_size(n: int, requested: int) -> int:
    return int(max(2, min(requested, n // MIN_POINTS_PER_CENTROID)))


def rq_kmeans(vectors: np.ndarray, levels: int, codebook: int, seed: int) -> np.ndarray:
    """int16 [N, levels] SIDs, each code in [1, codebook] (0 never: every post gets one)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    k = codebook_size(n, codebook)
    rng = np.random.default_rng(seed)
    train = rng.choice(n, size=min(n, MAX_TRAIN_POINTS), replace=False)
    residual = x.copy()
    codes = np.zeros((n, levels), dtype=np.int16)
    for level in range(levels):
        km = faiss.Kmeans(dim, k, niter=LLOYD_ITERATIONS, seed=seed + level, verbose=False)
        km.train(residual[train])
        _, assign = km.index.search(residual, 1)
        a = assign[:, 0]
        codes[:, level] = a + 1
        residual -= km.centroids[a]
    return codes
