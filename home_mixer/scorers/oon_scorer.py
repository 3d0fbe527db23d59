"""Out-of-network posts: score × oon_weight_factor (0.75). In-network or unknown: unchanged. When
diversity is off, score starts from weighted_score."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import Scorer
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class OONScorer(Scorer[ScoredPostsQuery, PostCandidate]):
    # sync on purpose: cheap CPU work that must run even after the request deadline passed
    def score(
        self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]
    ) -> list[tuple[float | None, float]]:
        f = query.params.oon_weight_factor
        out: list[tuple[float | None, float]] = []
        for c in candidates:
            s = c.score if c.score is not None or query.params.enable_author_diversity else c.weighted_score
            m = f if c.in_network is False else 1.0
            out.append((None if s is None else s * m, m))
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
