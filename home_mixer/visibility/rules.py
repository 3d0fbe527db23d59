"""A small visibility rules engine (stand-in for the reference's VF service): ordered rules over a
post's safety labels and the viewer's relation to its author. The first rule that fires decides;
its name becomes the candidate's `visibility_reason`. Like the reference's two safety levels,
some rules apply only to out-of-network posts (TimelineHomeRecommendations), the rest to all
(TimelineHome)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from home_mixer.candidate import PostCandidate


class Action(Enum):
    ALLOW = "allow"
    DROP = "drop"


class Level(Enum):
    TIMELINE_HOME = "TimelineHome"  # every post
    TIMELINE_HOME_RECOMMENDATIONS = "TimelineHomeRecommendations"  # out-of-network posts


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    level: Level
    when: Callable[[PostCandidate], bool]
    action: Action = Action.DROP


def _labelled(*labels: str) -> Callable[[PostCandidate], bool]:
    wanted = frozenset(labels)
    return lambda c: not wanted.isdisjoint(c.labels)


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("AuthorBlocksViewer", Level.TIMELINE_HOME, lambda c: bool(c.author_blocks_viewer)),
    Rule("SpamLabel", Level.TIMELINE_HOME, _labelled("spam")),
    Rule(
        "UnsafeLabel", Level.TIMELINE_HOME, _labelled("unsafe", "gore", "violence", "csam", "malicious_url")
    ),
    Rule("NsfwOutOfNetwork", Level.TIMELINE_HOME_RECOMMENDATIONS, _labelled("nsfw", "sensitive")),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: str | None


ALLOWED = Verdict(Action.ALLOW, None)


class VisibilityRules:
    def __init__(self, rules: Sequence[Rule] = DEFAULT_RULES) -> None:
        self.rules = tuple(rules)

    def evaluate(self, c: PostCandidate) -> Verdict:
        oon = c.in_network is not True
        for r in self.rules:
            if r.level is Level.TIMELINE_HOME_RECOMMENDATIONS and not oon:
                continue
            if r.when(c):
                return Verdict(r.action, r.name)
        return ALLOWED
