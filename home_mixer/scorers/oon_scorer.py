"""The out-of-network discount (vm-ranker V3 + V6 step 3, Oct-7): score × f when the post is
out-of-network (unknown counts as out-of-network, as home-mixer sends it) or, with
`enable_oon_rescore_in_network_replies_retweets`, an in-network reply or repost; else unchanged.
f = new_user_oon_weight_factor (0.00001) for a new viewer (account younger than
new_user_age_threshold_s, following at least new_user_min_following), else oon_weight_factor (0.75).
Part of the value-model step: skipped once that step failed (home_mixer/value_model.py)."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import Scorer
from home_mixer.candidate import PostCandidate
from home_mixer.params import Params
from home_mixer.query import ScoredPostsQuery, viewer_account_age_s
from home_mixer.value_model import Multiplied, apply_multiplied, value_model_step


def is_new_viewer(query: ScoredPostsQuery) -> bool:
    p = query.params
    age = viewer_account_age_s(query)
    return (
        age is not None
        and age < p.new_user_age_threshold_s
        and len(query.user_features.following) >= p.new_user_min_following
    )


def oon_factor(query: ScoredPostsQuery) -> float:
    p = query.params
    return p.new_user_oon_weight_factor if is_new_viewer(query) else p.oon_weight_factor


def discounted(c: PostCandidate, params: Params) -> bool:
    if c.in_network is not True:
        return True
    return params.enable_oon_rescore_in_network_replies_retweets and (c.is_reply() or c.is_repost())


class OONScorer(Scorer[ScoredPostsQuery, PostCandidate]):
    # sync on purpose: cheap CPU work that must run even after the request deadline passed
    def score(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[Multiplied]:
        return value_model_step(self.name, query, candidates, self._score)

    def _score(self, query: ScoredPostsQuery, candidates: Sequence[PostCandidate]) -> list[Multiplied]:
        f, params = oon_factor(query), query.params
        out: list[Multiplied] = []
        for c in candidates:
            s = c.score if c.score is not None else c.weighted_score
            m = f if discounted(c, params) else 1.0
            out.append((None if s is None else s * m, m))
        return out

    def update(self, candidate: PostCandidate, hydrated: Multiplied) -> None:
        apply_multiplied(self.name, candidate, hydrated)

    def update_all(self, candidates: Sequence[PostCandidate], results: Sequence[Multiplied]) -> None:
        name = self.name
        for c, r in zip(candidates, results, strict=True):
            apply_multiplied(name, c, r)
