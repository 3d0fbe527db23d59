"""The ground-truth engagement model the synthetic world draws its labels from: positive actions
scale with an affinity gate (topic preference x author quality x post quality), negative ones
with a badness gate. Every label is an independent Bernoulli draw; the probabilities
returned here are saved per impression as the oracle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protos import events_pb2

A = events_pb2.ActionName
FAV = A.SERVER_TWEET_FAV
REPLY = A.SERVER_TWEET_REPLY
QUOTE = A.SERVER_TWEET_QUOTE
REPOST = A.SERVER_TWEET_RETWEET
DWELLED = A.CLIENT_TWEET_RECAP_DWELLED
NOT_DWELLED = A.CLIENT_TWEET_RECAP_NOT_DWELLED
VQV = A.CLIENT_TWEET_VIDEO_QUALITY_VIEW
PHOTO_EXPAND = A.CLIENT_TWEET_PHOTO_EXPAND
REPORT = A.CLIENT_TWEET_REPORT
NOT_INTERESTED = A.CLIENT_TWEET_NOT_INTERESTED_IN
FOLLOW_AUTHOR = A.CLIENT_TWEET_FOLLOW_AUTHOR
BLOCK_AUTHOR = A.CLIENT_TWEET_BLOCK_AUTHOR
MUTE_AUTHOR = A.CLIENT_TWEET_MUTE_AUTHOR
CLICK = A.CLIENT_TWEET_CLICK
PROFILE_CLICK = A.CLIENT_TWEET_CLICK_PROFILE
SHARE = A.CLIENT_TWEET_SHARE
IMPRESSION = A.IMPRESSION

# Base rates of positive actions, multiplied by the affinity gate (reference values where it has them).
POSITIVE_BASE: dict[int, float] = {
    FAV: 0.14,
    CLICK: 0.10,
    VQV: 0.08,  # video posts only
    REPOST: 0.045,
    REPLY: 0.035,
    PHOTO_EXPAND: 0.04,  # non-video posts only
    PROFILE_CLICK: 0.03,
    FOLLOW_AUTHOR: 0.02,  # out-of-network authors only (tiny rate in-network)
    QUOTE: 0.015,
    SHARE: 0.012,
}
# Base rates of negative actions, multiplied by the "badness" gate.
NEGATIVE_BASE: dict[int, float] = {
    NOT_INTERESTED: 0.06,
    MUTE_AUTHOR: 0.012,
    BLOCK_AUTHOR: 0.008,
    REPORT: 0.002,  # + REPORT_LABELLED_BASE on spam/NSFW posts
}
REPORT_LABELLED_BASE = 0.04

POSITIVE_ACTIONS = tuple(POSITIVE_BASE)
NEGATIVE_ACTIONS = tuple(NEGATIVE_BASE)
# Every action the oracle has a probability for, in ActionName order.
MODELLED_ACTIONS: tuple[int, ...] = tuple(
    sorted((*POSITIVE_ACTIONS, *NEGATIVE_ACTIONS, DWELLED, NOT_DWELLED))
)


def oracle_column(action: int) -> str:
    """Oracle column of an action, e.g. 1 -> "p_SERVER_TWEET_FAV"."""
    return "p_" + events_pb2.ActionName.Name(action)


@dataclass(slots=True)
class ImpressionFeatures:
    """Hidden per-impression features (arrays of equal length) the model is a function of."""

    pref: np.ndarray  # user's preference weight for the post's topic (0 = off-topic)
    author_quality: np.ndarray
    post_quality: np.ndarray
    in_network: np.ndarray  # bool: the user follows the post's author
    has_video: np.ndarray  # bool
    spam: np.ndarray  # bool
    nsfw: np.ndarray  # bool


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def affinity_gate(
    f: ImpressionFeatures, slope: float = 14.0, center: float = 0.10, in_network_boost: float = 1.0
) -> np.ndarray:
    """sigmoid(slope * (pref * q_author * q_post - center) + boost * in_network)."""
    affinity = f.pref * f.author_quality * f.post_quality
    return _sigmoid(slope * (affinity - center) + in_network_boost * f.in_network)


def badness_gate(f: ImpressionFeatures) -> np.ndarray:
    """High for labelled, low-quality and off-topic posts: where negative feedback concentrates."""
    q = f.author_quality * f.post_quality
    logit = -2.0 + 3.0 * f.spam + 2.0 * f.nsfw + 2.0 * (f.pref <= 0) + 8.0 * (0.2 - q) - 0.5 * f.in_network
    return _sigmoid(logit)


def action_probabilities(
    f: ImpressionFeatures, slope: float = 14.0, center: float = 0.10, in_network_boost: float = 1.0
) -> dict[int, np.ndarray]:
    """P(action) for every modelled action: the exact Bernoulli parameter of each label."""
    gate = affinity_gate(f, slope, center, in_network_boost)
    bad = badness_gate(f)
    video = f.has_video.astype(np.float64)
    out: dict[int, np.ndarray] = {}
    for action, base in POSITIVE_BASE.items():
        p = base * gate
        if action == VQV:
            p = p * video
        elif action == PHOTO_EXPAND:
            p = p * (1.0 - video)
        elif action == FOLLOW_AUTHOR:
            p = np.where(f.in_network, 0.001 * gate, p)
        out[action] = p
    for action, base in NEGATIVE_BASE.items():
        p = base * bad
        if action == REPORT:
            p = p + REPORT_LABELLED_BASE * bad * (f.spam | f.nsfw)
        out[action] = p
    out[DWELLED] = 0.05 + 0.75 * gate
    out[NOT_DWELLED] = 1.0 - out[DWELLED]
    return {a: out[a] for a in MODELLED_ACTIONS}


def dwell_ms(gate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dwell time of a dwelled impression: lognormal around 15 s, longer when the gate is high."""
    secs = np.exp(rng.normal(np.log(15.0) + 1.0 * gate, 0.6))
    return (np.clip(secs, 10.0, 300.0) * 1000).astype(np.int64)
