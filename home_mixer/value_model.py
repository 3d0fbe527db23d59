"""The value-model step (reference vm-ranker, Oct-7: author diversity, OON discount, DPP) runs in
process here, as the scorers after the local score and the DPP selector. As in the reference, a
failure of that step serves every candidate its local score s_loc (weighted score + cold-start
lift) with no diversity, no OON discount and no DPP; the response says so (`value_model` in
`degraded`). Each step calls `value_model_step`, which skips it once an earlier step failed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from home_mixer.candidate import PostCandidate
from home_mixer.query import ScoredPostsQuery

log = logging.getLogger(__name__)
DEGRADED_ENTRY = "value_model"
# (new score, multiplier); multiplier None = this step did not apply (not shown in the debug view)
Multiplied = tuple[float | None, float | None]


VALUE_MODEL_STEPS = frozenset({"AuthorDiversityScorer", "OONScorer", "DppSelector"})


def local_score(c: PostCandidate) -> float | None:
    return c.local_score if c.local_score is not None else c.weighted_score


def fail_value_model(
    query: ScoredPostsQuery, candidates: Sequence[PostCandidate], name: str, e: Exception
) -> None:
    """Record the failure and put every candidate back on its local score: the multipliers of the
    value-model steps that already ran are dropped (they no longer apply)."""
    query.value_model_failed = f"{name}: {e!r}"
    log.warning("value-model step %s failed; serving local scores: %r", name, e)
    for c in candidates:
        c.score, c.dpp_selected, c.rank_before_dpp = local_score(c), None, None
        c.multipliers = [(n, m) for n, m in c.multipliers if n not in VALUE_MODEL_STEPS]


def value_model_step(
    name: str,
    query: ScoredPostsQuery,
    candidates: Sequence[PostCandidate],
    step: Callable[[ScoredPostsQuery, Sequence[PostCandidate]], list[Multiplied]],
) -> list[Multiplied]:
    """`step`'s results; once the value-model step failed (now or earlier): every candidate back to
    its local score, no multiplier."""
    if query.value_model_failed is None:
        try:
            return step(query, candidates)
        except Exception as e:  # noqa: BLE001 - the reference serves s_loc when vm-ranker fails
            fail_value_model(query, candidates, name, e)
    return [(local_score(c), None) for c in candidates]


def apply_multiplied(name: str, c: PostCandidate, r: Multiplied) -> None:
    c.score, m = r
    if m is not None:
        c.multipliers.append((name, m))
