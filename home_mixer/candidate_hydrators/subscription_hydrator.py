"""subscription_author_id: set for subscriber-only posts (the author whose subscribers may see it).
`subscription_checked` marks the candidates it ran for: IneligibleSubscriptionFilter fails closed on
the others (post store down)."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import Hydrator
from home_mixer.candidate import PostCandidate
from home_mixer.candidate_hydrators.core_data_candidate_hydrator import fetch_core
from home_mixer.query import ScoredPostsQuery


class SubscriptionHydrator(Hydrator[ScoredPostsQuery, PostCandidate]):
    timeout_s = 0.3

    async def hydrate(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[int | None]:
        out: list[int | None] = []
        for cd in await fetch_core(query, candidates):
            p = cd.original or cd.post
            out.append(p.author_id if p is not None and p.subscriber_only else None)
        return out

    def update(self, candidate: PostCandidate, hydrated: int | None) -> None:
        candidate.subscription_author_id = hydrated
        candidate.subscription_checked = True

    def update_all(self, candidates: Sequence[PostCandidate], results: Sequence[int | None]) -> None:
        for c, r in zip(candidates, results, strict=True):
            c.subscription_author_id = r
            c.subscription_checked = True
