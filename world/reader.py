"""How a simulated user reads a served feed (`foryou simulate`): top-down, stopping after each post
with a probability that grows with the position (position bias), and engaging with every post read
exactly as the world's ground truth says (the same independent Bernoulli draws as the world's
engagement log, world/sessions.py). Posts below the stop are served but never seen: they stay
impressions without engagement, as on a real feed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protos import events_pb2 as ev
from world import engagement_model as em
from world.ground_truth import GroundTruth

# actions that change the social graph: each also goes to `user-events` as a graph edge
GRAPH_ACTIONS = {
    em.FOLLOW_AUTHOR: ev.UserEventType.USER_EVENT_FOLLOW,
    em.BLOCK_AUTHOR: ev.UserEventType.USER_EVENT_BLOCK,
    em.MUTE_AUTHOR: ev.UserEventType.USER_EVENT_MUTE,
}


@dataclass(frozen=True, slots=True)
class PositionBias:
    """P(stop after reading the post at position i, 0-based) = min(max_stop, first + per_position·i).
    With the defaults a reader sees ~9 posts on average and the top post always; ~15% read more
    than 15 posts and ~4% more than 20 (docs/simulator.md)."""

    first: float = 0.05
    per_position: float = 0.01
    max_stop: float = 0.5

    def stop_probability(self, positions: np.ndarray) -> np.ndarray:
        return np.minimum(self.max_stop, self.first + self.per_position * np.asarray(positions, np.float64))

    def depth(self, n: int, rng: np.random.Generator, start: int = 0) -> tuple[int, bool]:
        """(how many of `n` posts at positions start, start+1, … one reader sees, whether they
        stopped there): a page of a feed whose first `start` posts were read already."""
        if n <= 0:
            return 0, False
        stops = rng.random(n) < self.stop_probability(start + np.arange(n))
        return (int(np.argmax(stops)) + 1, True) if stops.any() else (n, False)


@dataclass(slots=True)
class ReadResult:
    """What one user did with one feed: the engagement events (for LogEngagements) and the graph
    edges they made (user id, target user id, UserEventType)."""

    read: int = 0
    stopped: bool = False  # the reader stopped within these posts (else: would read on)
    events: list[ev.EngagementEvent] = field(default_factory=list)
    graph: list[tuple[int, int, int]] = field(default_factory=list)


def read_feed(
    truth: GroundTruth,
    user_id: int,
    post_ids: np.ndarray,
    author_ids: np.ndarray,
    now_ms: int,
    rng: np.random.Generator,
    bias: PositionBias | None = None,
    start: int = 0,
) -> ReadResult:
    """Read the feed (`post_ids` in served order; a page whose first post is at position `start`)
    and draw the engagements of the posts seen. Events are stamped `now_ms` + the index in ms
    (after the served record, in reading order)."""
    post_ids = np.asarray(post_ids, dtype=np.int64)
    read, stopped = (bias or PositionBias()).depth(len(post_ids), rng, start)
    out = ReadResult(read=read, stopped=stopped)
    if out.read == 0:
        return out
    seen, authors = post_ids[: out.read], np.asarray(author_ids, dtype=np.int64)[: out.read]
    p = truth.probabilities(user_id, seen)
    known = ~np.isnan(p[em.FAV])  # a post the world does not know draws nothing
    # the affinity gate back from P(dwelled) = 0.05 + 0.75·gate: it sets the dwell time
    gate = np.clip((np.nan_to_num(p[em.DWELLED]) - 0.05) / 0.75, 0.0, 1.0)
    dwell = em.dwell_ms(gate, rng)
    dwelled = rng.random(len(seen)) < np.nan_to_num(p[em.DWELLED])
    for action in em.MODELLED_ACTIONS:
        if action == em.DWELLED:
            fired = dwelled
        elif action == em.NOT_DWELLED:
            fired = ~dwelled
        else:
            fired = rng.random(len(seen)) < np.nan_to_num(p[action])
        for i in np.flatnonzero(fired & known).tolist():
            out.events.append(
                ev.EngagementEvent(
                    user_id=user_id,
                    post_id=int(seen[i]),
                    author_id=int(authors[i]),
                    action=action,
                    timestamp_ms=now_ms + 1 + i,
                    product_surface=ev.ProductSurface.PRODUCT_SURFACE_HOME_TIMELINE,
                    dwell_ms=int(dwell[i]) if action == em.DWELLED else 0,
                )
            )
            if action in GRAPH_ACTIONS:
                out.graph.append((user_id, int(authors[i]), GRAPH_ACTIONS[action]))
    out.events.sort(key=lambda e: (e.timestamp_ms, e.action))
    return out
