"""Post-selection: runs the visibility rules on each selected post and drops what they drop; the
reason is kept on the candidate for the debug view. Safety: fails closed. A post the rules allow is
still dropped when their inputs are missing: the author relation (AuthorRelationCandidateHydrator
failed, or was not started after the request deadline) or the post's labels (core data not loaded)."""

from __future__ import annotations

from candidate_pipeline import Filter, FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.filters.fail_closed import SafetySplit
from home_mixer.query import ScoredPostsQuery
from home_mixer.visibility.rules import Action, VisibilityRules

RELATION_UNAVAILABLE = "author relation unavailable"
LABELS_UNAVAILABLE = "post labels unavailable"


class VisibilityFilter(Filter[ScoredPostsQuery, PostCandidate]):
    def __init__(self, rules: VisibilityRules | None = None) -> None:
        self.rules = rules or VisibilityRules()

    def filter(self, query: ScoredPostsQuery, candidates: list[PostCandidate]) -> FilterResult[PostCandidate]:
        split = SafetySplit()
        for c in candidates:
            v = self.rules.evaluate(c)
            c.visibility_reason = v.reason
            if v.action is Action.DROP:
                split.removed.append(c)  # a rule fired on what is known: its reason stands
            elif c.author_blocks_viewer is None:
                c.visibility_reason = "AuthorRelationUnavailable"
                split.uncleared(c, RELATION_UNAVAILABLE)
            elif c.core_data_found is not True:
                c.visibility_reason = "LabelsUnavailable"
                split.uncleared(c, LABELS_UNAVAILABLE)
            else:
                split.kept.append(c)
        return split.result(query, self.name)
