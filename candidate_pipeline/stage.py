"""The pipeline's stages, in execution order. A StrEnum, so each member *is* its label string: metric
labels, trace dicts and the summary log line read exactly as they did when stages were plain strings."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    QUERY_HYDRATOR = "query_hydrator"
    DEPENDENT_QUERY_HYDRATOR = "dependent_query_hydrator"
    SOURCE = "source"
    HYDRATOR = "hydrator"
    FILTER = "filter"
    SCORER = "scorer"
    SELECTOR = "selector"
    POST_SELECTION_HYDRATOR = "post_selection_hydrator"
    POST_SELECTION_FILTER = "post_selection_filter"
    SIDE_EFFECT = "side_effect"

    @property
    def is_filter(self) -> bool:
        """A filter stage (pre- or post-selection): its summary also reports kept/removed."""
        return self in (Stage.FILTER, Stage.POST_SELECTION_FILTER)
