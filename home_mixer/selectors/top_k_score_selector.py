"""Top-K by final score (K = top_k_candidates_to_select, 50); None/NaN/±inf sink to the bottom. With
the video carousel on, up to 30 extra videos follow the top K (selectors/video_carousel_extras.py)."""

from __future__ import annotations

import math

from candidate_pipeline import Selector
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery
from home_mixer.selectors.video_carousel_extras import append_video_carousel_extras, video_carousel_enabled


class TopKScoreSelector(Selector[ScoredPostsQuery, PostCandidate]):
    def score(self, candidate: PostCandidate) -> float:
        return candidate.score if candidate.score is not None else -math.inf

    def size_for(self, query: ScoredPostsQuery) -> int | None:
        return query.params.top_k_candidates_to_select

    def select(
        self, query: ScoredPostsQuery, candidates: list[PostCandidate]
    ) -> tuple[list[PostCandidate], list[PostCandidate]]:
        selected, rest = super().select(query, candidates)
        if video_carousel_enabled(query):
            return append_video_carousel_extras(query, selected, rest)
        return selected, rest
