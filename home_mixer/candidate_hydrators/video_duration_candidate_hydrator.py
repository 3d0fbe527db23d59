"""video_duration_ms of the post (of the original for a repost); None when it has no video."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import Hydrator
from home_mixer.candidate import PostCandidate
from home_mixer.candidate_hydrators.core_data_candidate_hydrator import fetch_core
from home_mixer.query import ScoredPostsQuery


class VideoDurationCandidateHydrator(Hydrator[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.3

    async def hydrate(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[int | None]:
        out: list[int | None] = []
        for cd in await fetch_core(query, candidates):
            p = cd.original or cd.post
            out.append(
                p.video_duration_ms if p is not None and p.has_video and p.video_duration_ms > 0 else None
            )
        return out

    def update(self, candidate: PostCandidate, hydrated: int | None) -> None:
        candidate.video_duration_ms = hydrated

    def update_all(self, candidates: Sequence[PostCandidate], results: Sequence[int | None]) -> None:
        for c, r in zip(candidates, results, strict=True):
            c.video_duration_ms = r
