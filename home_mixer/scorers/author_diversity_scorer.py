"""score = weighted_score × ((1 − floor) × decay^k + floor), k = how many candidates by the same
(serving) author rank above this one by weighted score: 1, 0.625, 0.4375, … → 0.25 with the defaults.
A missing or NaN weighted score ranks last and leaves score None/NaN."""

from __future__ import annotations

import math
from collections.abc import Sequence

from candidate_pipeline import Scorer
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


def diversity_multiplier(k: int, decay: float, floor: float) -> float:
    return (1.0 - floor) * decay**k + floor


def _rank_key(c: PostCandidate) -> float:
    w = c.weighted_score
    return w if w is not None and not math.isnan(w) else -math.inf


class AuthorDiversityScorer(Scorer[ScoredPostsQuery, PostCandidate]):
    def enable(self, query: ScoredPostsQuery) -> bool:
        return query.params.enable_author_diversity

    # sync on purpose: cheap CPU work that must run even after the request deadline passed
    def score(
        self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]
    ) -> list[tuple[float | None, float]]:
        decay, floor = query.params.author_diversity_decay, query.params.author_diversity_floor
        order = sorted(range(len(candidates)), key=lambda i: _rank_key(candidates[i]), reverse=True)
        out: list[tuple[float | None, float]] = [(None, 1.0)] * len(candidates)
        seen: dict[int, int] = {}
        for i in order:
            c = candidates[i]
            k = seen.get(c.author_id, 0)
            seen[c.author_id] = k + 1
            m = diversity_multiplier(k, decay, floor)
            out[i] = (None if c.weighted_score is None else c.weighted_score * m, m)
        return out

    def update(self, candidate: PostCandidate, hydrated: tuple[float | None, float]) -> None:
        candidate.score, m = hydrated
        candidate.multipliers.append((self.name, m))

    def update_all(
        self, candidates: Sequence[PostCandidate], results: Sequence[tuple[float | None, float]]
    ) -> None:
        name = self.name
        for c, (s, m) in zip(candidates, results, strict=True):
            c.score = s
            c.multipliers.append((name, m))
