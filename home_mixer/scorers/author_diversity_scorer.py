"""Author diversity (vm-ranker V6 step 2): candidates ordered by their score after the cold-start
lift (a = score, else weighted_score) descending, stable (ties keep request order); k = how many
earlier candidates have the same (serving) author; score = a × ((1 − floor) × decay^k + floor):
1, 0.625, 0.4375, … → 0.25 with the defaults. A missing or NaN score ranks last and stays None/NaN.
Part of the value-model step: skipped once that step failed (home_mixer/value_model.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from candidate_pipeline import Scorer
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery
from home_mixer.value_model import Multiplied, apply_multiplied, local_score, value_model_step


def diversity_multiplier(k: int, decay: float, floor: float) -> float:
    return (1.0 - floor) * decay**k + floor


def _start(c: PostCandidate) -> float | None:
    return c.score if c.score is not None else local_score(c)


def _rank_key(c: PostCandidate) -> float:
    a = _start(c)
    return a if a is not None and not math.isnan(a) else -math.inf


class AuthorDiversityScorer(Scorer[ScoredPostsQuery, PostCandidate]):
    def enable(self, query: ScoredPostsQuery) -> bool:
        return query.params.enable_author_diversity

    # sync on purpose: cheap CPU work that must run even after the request deadline passed
    def score(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[Multiplied]:
        return value_model_step(self.name, query, candidates, self._score)

    def _score(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[Multiplied]:
        decay, floor = query.params.author_diversity_decay, query.params.author_diversity_floor
        order = sorted(range(len(candidates)), key=lambda i: _rank_key(candidates[i]), reverse=True)
        out: list[Multiplied] = [(None, 1.0)] * len(candidates)
        seen: dict[int, int] = {}
        for i in order:
            c = candidates[i]
            k = seen.get(c.author_id, 0)
            seen[c.author_id] = k + 1
            m = diversity_multiplier(k, decay, floor)
            a = _start(c)
            out[i] = (None if a is None else a * m, m)
        return out

    def update(self, candidate: PostCandidate, hydrated: Multiplied) -> None:
        apply_multiplied(self.name, candidate, hydrated)

    def update_all(self, candidates: Sequence[PostCandidate], results: Sequence[Multiplied]) -> None:
        name = self.name
        for c, r in zip(candidates, results, strict=True):
            apply_multiplied(name, c, r)
