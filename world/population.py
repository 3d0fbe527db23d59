"""World generator sections "authors" and "users": the hidden per-author and per-user traits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from foryou.core.snowflake import make_ids
from world.config import WorldConfig

MINUTE_MS = 60_000
# snowflake sequence of new user k: NEW_USER_SEQUENCE + k (posts use their row, < 2^21), so a new
# user's id never equals a post id
NEW_USER_SEQUENCE = 1 << 21


@dataclass(slots=True)
class Authors:
    """Per-author arrays, index = author row (id = ids[row])."""

    ids: np.ndarray
    primary: np.ndarray  # topic
    secondary: np.ndarray  # topic, never the primary
    quality: np.ndarray
    nsfw: np.ndarray
    popularity: np.ndarray  # Zipf over a random rank, max 1
    activity: np.ndarray  # relative posting rate
    names: list[str]

    def frame(self, follower_count: np.ndarray) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "author_id": self.ids,
                "screen_name": self.names,
                "quality": self.quality,
                "follower_count": follower_count.astype(np.int64),
                "primary_topic": self.primary.astype(np.int32),
                "secondary_topic": self.secondary.astype(np.int32),
                "topics": [[int(p), int(s)] for p, s in zip(self.primary, self.secondary, strict=True)],
                "nsfw": self.nsfw,
                "popularity": self.popularity,
            },
            schema_overrides={"topics": pl.List(pl.Int32)},
        )


@dataclass(slots=True)
class Users:
    """Per-user arrays, index = user row (id = ids[row])."""

    ids: np.ndarray
    n_topics: np.ndarray  # how many topics the user cares about
    topic_rank: np.ndarray  # [U, T] topics in the user's order of preference
    weights: np.ndarray  # [U, T] preference weights in that order (0 past n_topics)
    pref: np.ndarray  # [U, T] preference weight per topic id
    activity: np.ndarray  # relative impression rate
    # account creation (ms); None = every account predates the world (sequential ids carry no time)
    created_at_ms: np.ndarray | None = None
    names: list[str] | None = None  # screen names; None = "user<id>"

    def frame(self) -> pl.DataFrame:
        n = self.n_topics
        created = self.created_at_ms if self.created_at_ms is not None else np.zeros(len(self.ids), np.int64)
        return pl.DataFrame(
            {
                "user_id": self.ids,
                "screen_name": self.names if self.names is not None else [f"user{u}" for u in self.ids],
                "topics": [list(self.topic_rank[i, : n[i]]) for i in range(len(self.ids))],
                "topic_weights": [list(self.weights[i, : n[i]]) for i in range(len(self.ids))],
                "activity": self.activity,
                "created_at_ms": created.astype(np.int64),
            },
            schema_overrides={"topics": pl.List(pl.Int32), "topic_weights": pl.List(pl.Float64)},
        )


def draw_authors(c: WorldConfig, rng: np.random.Generator, topic_names: list[str]) -> Authors:
    A, T = c.n_authors, c.n_topics
    ids = np.arange(c.n_users + 1, c.n_users + A + 1, dtype=np.int64)  # one id space, authors after users
    primary = rng.integers(0, T, size=A)
    secondary = (primary + rng.integers(1, T, size=A)) % T
    quality = rng.beta(2.0, 2.0, size=A)
    nsfw = rng.random(A) < c.nsfw_author_frac
    popularity = (rng.permutation(A) + 1.0) ** -c.author_popularity_zipf
    popularity /= popularity.max()
    activity = rng.lognormal(0.0, 0.5, size=A)
    names = [f"{topic_names[primary[i]]}_{i}_{ids[i]}" for i in range(A)]
    return Authors(ids, primary, secondary, quality, nsfw, popularity, activity, names)


def draw_users(c: WorldConfig, rng: np.random.Generator) -> Users:
    """2-4 topics per user with Gamma(1.5) weights, scaled so the favourite topic is 1: scaling by
    the max rather than to sum 1 widens the affinity gate's range."""
    U = c.n_users
    return _draw_users(np.arange(1, U + 1, dtype=np.int64), c.n_topics, rng)


def _draw_users(ids: np.ndarray, T: int, rng: np.random.Generator) -> Users:
    U = len(ids)
    n_top = rng.integers(2, 5, size=U)
    topic_rank = np.argsort(rng.random((U, T)), axis=1)
    w = np.sort(rng.gamma(1.5, size=(U, T)), axis=1)[:, ::-1]
    w = np.where(np.arange(T)[None, :] < n_top[:, None], w, 0.0)
    w /= w[:, :1]
    pref = np.zeros((U, T))
    np.put_along_axis(pref, topic_rank, w, axis=1)
    activity = rng.lognormal(0.0, 0.6, size=U)
    return Users(ids, n_top, topic_rank, w, pref, activity)


def draw_new_users(c: WorldConfig, rng: np.random.Generator) -> Users:
    """`n_new_users` accounts created new_user_min_age_min..new_user_max_age_min before `now`: the
    reference reads a viewer's account age from its snowflake id, so a new user's id is the snowflake
    of its creation time (sequence = 2^21 + its row; the regular users' ids 1..n_users carry no time). Topic
    preferences and activity as every user's. `rng` is the new users' own stream."""
    n = c.n_new_users
    lo = c.now_ms - int(c.new_user_max_age_min * MINUTE_MS)
    hi = c.now_ms - int(c.new_user_min_age_min * MINUTE_MS)
    created = np.sort(rng.integers(lo, hi + 1, size=n)).astype(np.int64)
    ids = make_ids(created, NEW_USER_SEQUENCE + np.arange(n, dtype=np.int64))
    users = _draw_users(ids, c.n_topics, rng)
    users.created_at_ms = created
    users.names = [f"newuser{k}" for k in range(n)]
    return users
