"""DPP re-rank, then top-K (reference vm-ranker V8 + TopKScoreSelector, Oct-7 `dpp.rs`).

Pool: the M = min(dpp_max_selected_rank = 150, n) best scored candidates (score descending, ties to
the lower index). Quality q_i = exp(α · s_i / s_max), α = θ′ / (2(1 − θ′)), θ′ = clamp(θ = 0.65, 0,
1 − 1e-6), s_max = max(top score, 1e-6). Kernel L_ij = q_i q_j cos(e_i, e_j) with e the post's
embedding (home_mixer/embeddings.py). Greedy MAP with incremental Cholesky rows: first the largest
L_ii, then each step the largest residual d_i = L_ii − Σ_t c_t,i² (ties to the first in pool order),
stopping at dpp_top_k = 50 picks or when the best d ≤ 1e-6. DPP only selects: picked candidates
keep their score, every other candidate gets 0 (so at most 50 have a non-zero score), then the
top-K selector orders by score (stable: the zeros keep pipeline order). Each pooled candidate
records its rank before DPP (`rank_before_dpp`) and whether it was picked; the debug view shows both
next to the served position. Part of the value-model step: skipped once that step failed, and a
failure here serves every candidate its local score (home_mixer/value_model.py)."""

from __future__ import annotations

import math

import numpy as np

from home_mixer.candidate import PostCandidate
from home_mixer.embeddings import text_embedding
from home_mixer.query import ScoredPostsQuery
from home_mixer.selectors.top_k_score_selector import TopKScoreSelector
from home_mixer.value_model import fail_value_model

EPS = 1e-6


def dpp_alpha(theta: float) -> float:
    t = min(max(theta, 0.0), 1.0 - EPS)
    return t / (2 * (1 - t))


def greedy_map(quality: np.ndarray, emb: np.ndarray, k: int) -> list[int]:
    """Indices (into the pool) picked by the greedy MAP of L = diag(q) · cos(E) · diag(q), in pick
    order; `emb` rows need not be unit vectors (cosines are computed here)."""
    n = len(quality)
    if n == 0 or k <= 0:
        return []
    norms = np.linalg.norm(emb, axis=1)
    denom = np.outer(norms, norms)
    cos = np.divide(emb @ emb.T, denom, out=np.zeros((n, n)), where=denom > EPS)
    np.fill_diagonal(cos, 1.0)
    kernel = quality[:, None] * quality[None, :] * cos
    d = np.diag(kernel).copy()
    rows = np.zeros((min(k, n), n))
    j = int(np.argmax(d))  # first index on ties
    picked = [j]
    while len(picked) < min(k, n):
        s = len(picked) - 1
        e = (kernel[j] - rows[:s, j] @ rows[:s]) / math.sqrt(d[j])
        rows[s] = e
        d = d - e * e
        d[picked] = -np.inf
        j = int(np.argmax(d))
        if d[j] <= EPS:
            break  # rank exhausted: every remaining item lies in the span of the picked ones
        picked.append(j)
    return picked


def _score(c: PostCandidate) -> float | None:
    s = c.score
    return s if s is not None and math.isfinite(s) else None


def dpp_rescore(query: ScoredPostsQuery, candidates: list[PostCandidate]) -> None:
    p = query.params
    scored = [i for i, c in enumerate(candidates) if _score(c) is not None]
    pool = sorted(scored, key=lambda i: (-(_score(candidates[i]) or 0.0), i))[: p.dpp_max_selected_rank]
    for rank, i in enumerate(pool):
        candidates[i].rank_before_dpp = rank
    picked: set[int] = set()
    if pool:
        scores = np.array([_score(candidates[i]) for i in pool], dtype=np.float64)
        s_max = max(float(scores[0]), EPS)
        quality = np.exp(dpp_alpha(p.dpp_theta) * scores / s_max)
        emb = np.stack(
            [
                text_embedding(candidates[i].text, candidates[i].original_post_id(), p.dpp_embedding_dim)
                for i in pool
            ]
        )
        picked = {pool[j] for j in greedy_map(quality, emb, p.dpp_top_k)}
    for i, c in enumerate(candidates):
        c.dpp_selected = i in picked
        if i not in picked:
            c.score = 0.0
            c.multipliers.append(("DppSelector", 0.0))


class DppSelector(TopKScoreSelector):
    def select(
        self, query: ScoredPostsQuery, candidates: list[PostCandidate]
    ) -> tuple[list[PostCandidate], list[PostCandidate]]:
        if query.params.dpp_enabled and query.value_model_failed is None:
            try:
                dpp_rescore(query, candidates)
            except Exception as e:  # noqa: BLE001 - the reference serves s_loc when vm-ranker fails
                fail_value_model(query, candidates, self.name, e)
        return super().select(query, candidates)
