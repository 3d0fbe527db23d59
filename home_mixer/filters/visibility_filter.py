"""Post-selection: runs the visibility rules on each selected post and drops what they drop; the
reason is kept on the candidate for the debug view."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery
from home_mixer.visibility.rules import Action, VisibilityRules


class VisibilityFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def __init__(self, rules: VisibilityRules | None = None) -> None:
        self.rules = rules or VisibilityRules()

    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        kept: list[PostCandidate] = []
        removed: list[PostCandidate] = []
        for c in candidates:
            v = self.rules.evaluate(c)
            c.visibility_reason = v.reason
            (removed if v.action is Action.DROP else kept).append(c)
        return FilterResult(kept, removed)
