"""A served feed scored against the world's ground truth: true P(favorite) and P(negative
feedback) of the served posts, of every eligible candidate, of a newest-first feed and of the best
possible feed of the same length (`foryou demo`, `foryou simulate`)."""

from __future__ import annotations

import numpy as np

from protos import home_mixer_pb2 as hm
from world import engagement_model as em
from world.ground_truth import GroundTruth

NEGATIVE_FEEDBACK = (em.NOT_INTERESTED, em.BLOCK_AUTHOR, em.MUTE_AUTHOR, em.REPORT)


def negative_probability(p: dict[int, np.ndarray]) -> np.ndarray:
    """P(negative feedback): the sum of the negative actions' probabilities (they are rare and
    drawn independently, so the sum is ~ P(any))."""
    return sum((p[a] for a in NEGATIVE_FEEDBACK), np.zeros_like(p[em.FAV]))


def feed_truth(
    truth: GroundTruth, user: int, resp: hm.GetDebugScoredPostsResponse, length: int | None = None
) -> dict[str, dict]:
    """The world's true P(favorite) and P(negative feedback) averaged over the served posts, over
    every candidate that passed the filters, over the newest of those (a reverse-chronological
    feed of the same length) and over the best possible feed of that length (top true P(favorite)).
    `length`: the feed as the first `length` posts of the served ranking instead (the selected
    posts in order, then the others by final score, as the next pages would serve them): a feed
    of one length whatever page size the request asked for."""
    eligible = [c for c in resp.candidates if c.outcome in ("selected", "not_selected")]
    ids = np.array([c.post_id for c in eligible], dtype=np.int64)
    served = np.array([c.outcome == "selected" for c in eligible], dtype=bool)
    if length is not None:
        rank = sorted(
            range(len(eligible)),
            key=lambda i: (not served[i], eligible[i].position if served[i] else -eligible[i].final_score),
        )
        served = np.isin(np.arange(len(ids)), rank[:length])
    p = truth.probabilities(user, ids)
    fav = p[em.FAV]
    neg = negative_probability(p)
    n = int(served.sum())
    inn = np.array([c.in_network for c in eligible], dtype=bool)
    score = np.array([c.final_score if c.in_network else -np.inf for c in eligible])
    subsets = {
        "served": served,
        # the same ranking over the in-network candidates alone: the feed without retrieval
        "in_network_only": np.isin(np.arange(len(ids)), np.argsort(-score)[: min(n, int(inn.sum()))]),
        "eligible": np.ones(len(ids), dtype=bool),
        "newest": np.isin(np.arange(len(ids)), np.argsort(-ids)[:n]),  # snowflake ids grow with time
        "best": np.isin(np.arange(len(ids)), np.argsort(-np.nan_to_num(fav, nan=-1.0))[:n]),
    }
    return {
        name: {
            "posts": int(m.sum()),
            "favorite": float(np.nanmean(fav[m])) if m.any() else float("nan"),
            "negative": float(np.nanmean(neg[m])) if m.any() else float("nan"),
        }
        for name, m in subsets.items()
    }
