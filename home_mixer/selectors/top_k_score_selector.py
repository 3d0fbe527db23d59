"""Top-K by final score (K = top_k_candidates_to_select, 50); None/NaN/±inf sink to the bottom."""

from __future__ import annotations

import math

from candidate_pipeline import Selector
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class TopKScoreSelector(Selector[ScoredPostsQuery, PostCandidate]):
    def score(self, candidate: PostCandidate) -> float:
        return candidate.score if candidate.score is not None else -math.inf

    def size_for(self, query: ScoredPostsQuery) -> int | None:
        return query.params.top_k_candidates_to_select
