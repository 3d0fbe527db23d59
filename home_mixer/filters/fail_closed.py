"""What the safety and privacy filters share when they fail closed: a candidate they cannot clear
(the data its rule needs is missing) is removed like one the rule rejects, and recorded with the
reason (`ScoredPostsQuery.record_fail_closed`: the candidate's removal_reason, the response's
`degraded`). Kept here once so no filter can remove without recording, or record without removing."""

from __future__ import annotations

from collections.abc import Sequence

from candidate_pipeline import FilterResult
from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery


class SafetySplit:
    """One safety filter's partition, built candidate by candidate: append to `kept` or `removed`
    (a rule fired on known data), or call `uncleared` (data missing); `result` records the reasons."""

    __slots__ = ("_uncleared", "kept", "removed")

    def __init__(self) -> None:
        self.kept: list[PostCandidate] = []
        self.removed: list[PostCandidate] = []
        self._uncleared: dict[str, list[PostCandidate]] = {}

    def uncleared(self, c: PostCandidate, reason: str) -> None:
        self.removed.append(c)
        self._uncleared.setdefault(reason, []).append(c)

    def result(self, query: ScoredPostsQuery, component: str) -> FilterResult[PostCandidate]:
        for reason, cs in self._uncleared.items():
            query.record_fail_closed(component, reason, cs)
        return FilterResult(self.kept, self.removed)


def remove_all(
    query: ScoredPostsQuery, component: str, reason: str, candidates: Sequence[PostCandidate]
) -> FilterResult[PostCandidate]:
    """The viewer's data the filter needs is missing: no candidate can be cleared."""
    query.record_fail_closed(component, reason, candidates)
    return FilterResult([], list(candidates))
