"""in_network = the author is the viewer or someone the viewer follows."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import Hydrator
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class InNetworkCandidateHydrator(Hydrator[ScoredPostsQuery, PostCandidate]):
    # sync on purpose: cheap, and must run even after the request deadline passed
    def hydrate(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[bool]:
        following, viewer = query.user_features.following, query.viewer_id
        return [c.author_id == viewer or c.author_id in following for c in candidates]

    def update(self, candidate: PostCandidate, hydrated: bool) -> None:
        candidate.in_network = hydrated

    def update_all(self, candidates: Sequence[PostCandidate], results: Sequence[bool]) -> None:
        for c, r in zip(candidates, results, strict=True):  # tight loop: 2,000 candidates per request
            c.in_network = r
