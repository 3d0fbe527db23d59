"""World generator sections "follow graph", "blocks / mutes", "subscriptions" and "muted keywords":
the static social graph, all of whose edges exist before the first post; plus the authors' follow
backs (mutual follows) and the new users' onboarding follows, each from its own random stream."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from world.config import HOUR_MS, WorldConfig
from world.population import Authors, Users
from world.sampling import csr, draw_members, gumbel_topk, row_choice

MINUTE_MS = 60_000
_FOLLOW_CHUNK = 2048  # users per chunk of the user x author follow-score matrix
_MAX_DENSE_MASK = 50_000_000  # user x author cells of the dense follow mask
_EDGE_SCHEMA = {"user_id": pl.Int64, "target_user_id": pl.Int64, "kind": pl.Utf8, "created_at_ms": pl.Int64}


@dataclass(slots=True)
class FollowGraph:
    """Follow edges as (user row, author row) pairs, plus every edge kind as the `follows` frame."""

    fu: np.ndarray
    fa: np.ndarray
    key: np.ndarray  # sorted fu * n_authors + fa, for membership tests
    edges: pl.DataFrame
    follower_count: np.ndarray  # per author row


def graph_start_ms(c: WorldConfig) -> int:
    """The graph's edges are created in the 5 h from this time, before the first post."""
    return c.now_ms - int(c.post_window_h * HOUR_MS) - 6 * HOUR_MS


def draw_follow_graph(
    c: WorldConfig, rng: np.random.Generator, users: Users, authors: Authors
) -> FollowGraph:
    fu, fa = _follows(c, rng, users, authors)
    negative = _blocks_and_mutes(c, rng, users, authors, fu, fa)
    subs_u, subs_a = _subscriptions(c, rng, fu, fa)
    t0 = graph_start_ms(c)
    follow = _edges_frame(rng, t0, users, authors, fu, fa, "follow")
    edges = pl.concat(
        [
            follow,
            _edges_frame(rng, t0, users, authors, *negative["block"], "block"),
            _edges_frame(rng, t0, users, authors, *negative["mute"], "mute"),
            _edges_frame(rng, t0, users, authors, subs_u, subs_a, "subscribe"),
            _follow_backs(c, follow, authors, fa),
        ]
    ).sort(["created_at_ms", "user_id", "target_user_id", "kind"])
    A = c.n_authors
    return FollowGraph(fu, fa, np.sort(fu * A + fa), edges, np.bincount(fa, minlength=A))


def _follows(
    c: WorldConfig, rng: np.random.Generator, users: Users, authors: Authors
) -> tuple[np.ndarray, np.ndarray]:
    """Users follow authors matching their topics, popular authors more: Poisson(mean·√activity)
    authors each, without replacement ∝ (pref[primary] + ½ pref[secondary] + 0.02)² · popularity^½."""
    U, A = c.n_users, c.n_authors
    pref = users.pref
    k_follow = np.clip(rng.poisson(c.mean_follows * np.sqrt(users.activity)), 0, A)
    f_rows, f_cols = [], []
    for lo in range(0, U, _FOLLOW_CHUNK):
        hi = min(U, lo + _FOLLOW_CHUNK)
        score = pref[lo:hi, authors.primary] + 0.5 * pref[lo:hi, authors.secondary] + 0.02
        logw = 2.0 * np.log(score) + 0.5 * np.log(authors.popularity)[None, :]
        r, col = gumbel_topk(logw, k_follow[lo:hi], rng)
        f_rows.append(r + lo)
        f_cols.append(col)
    return np.concatenate(f_rows), np.concatenate(f_cols)


def _blocks_and_mutes(
    c: WorldConfig, rng: np.random.Generator, users: Users, authors: Authors, fu: np.ndarray, fa: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per kind, (user rows, author rows): one author the user neither follows nor already blocked
    or muted, skewed to low quality and off-topic."""
    U, A = c.n_users, c.n_authors
    if U * A > _MAX_DENSE_MASK:
        raise ValueError("n_users x n_authors too large for the dense follow mask")
    excluded = np.zeros((U, A), dtype=bool)
    excluded[fu, fa] = True
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind, frac in (("block", c.block_frac), ("mute", c.mute_frac)):
        us = np.flatnonzero(rng.random(U) < frac)
        bad_w = (1.05 - authors.quality)[None, :] / (0.05 + users.pref[us][:, authors.primary])
        wts = np.where(excluded[us], 0.0, bad_w)
        ok = wts.sum(axis=1) > 0
        us, cols = us[ok], row_choice(wts[ok], rng)
        excluded[us, cols] = True
        out[kind] = (us, cols)
    return out


def _subscriptions(
    c: WorldConfig, rng: np.random.Generator, fu: np.ndarray, fa: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(user rows, author rows): a share of the users who follow someone subscribe to one of them."""
    U = c.n_users
    f_order, f_start, deg = csr(fu, U)
    subs_u = np.flatnonzero((rng.random(U) < c.subscribe_frac) & (deg > 0))
    return subs_u, fa[draw_members(f_order, f_start, deg, subs_u, rng)]


def _follow_backs(c: WorldConfig, follow: pl.DataFrame, authors: Authors, fa: np.ndarray) -> pl.DataFrame:
    """Mutual follows: the author of a follow edge follows the user back with P = mutual_follow_frac ·
    (1 − author popularity) (small accounts follow back more), 1–55 min after the follow, so before
    the first post. Kind `follow_back`, user_id = the author, target = the user: published as a FOLLOW
    (the user's `followers` set then holds the author). Own random stream: the rest of the world is
    unchanged."""
    rng = np.random.default_rng([c.seed, 0xF0B])
    p = c.mutual_follow_frac * (1.0 - authors.popularity[fa])
    back = rng.random(len(fa)) < p
    delay = rng.integers(MINUTE_MS, 55 * MINUTE_MS, size=len(fa))
    return pl.DataFrame(
        {
            "user_id": follow["target_user_id"].to_numpy()[back],
            "target_user_id": follow["user_id"].to_numpy()[back],
            "kind": ["follow_back"] * int(back.sum()),
            "created_at_ms": (follow["created_at_ms"].to_numpy() + delay)[back].astype(np.int64),
        },
        schema=_EDGE_SCHEMA,
    )


def draw_new_user_follows(
    c: WorldConfig, rng: np.random.Generator, new_users: Users, created_at_ms: np.ndarray, authors: Authors
) -> tuple[pl.DataFrame, np.ndarray]:
    """The new users' onboarding follows: new_user_min_follows..new_user_max_follows authors each, by
    the same topic x popularity weights as everyone's follows, 10-90 s after the account was created.
    Returns (the `follow` edges, the follower count they add per author row)."""
    n, A = len(new_users.ids), c.n_authors
    if n == 0:
        return pl.DataFrame(schema=_EDGE_SCHEMA), np.zeros(A, np.int64)
    k = np.minimum(rng.integers(c.new_user_min_follows, c.new_user_max_follows + 1, size=n), A)
    pref = new_users.pref
    score = pref[:, authors.primary] + 0.5 * pref[:, authors.secondary] + 0.02
    logw = 2.0 * np.log(score) + 0.5 * np.log(authors.popularity)[None, :]
    rows, cols = gumbel_topk(logw, k, rng)
    ts = created_at_ms[rows] + rng.integers(10_000, 90_000, size=len(rows))
    edges = pl.DataFrame(
        {
            "user_id": new_users.ids[rows],
            "target_user_id": authors.ids[cols],
            "kind": ["follow"] * len(rows),
            "created_at_ms": ts.astype(np.int64),
        },
        schema=_EDGE_SCHEMA,
    ).sort(["created_at_ms", "user_id", "target_user_id"])
    return edges, np.bincount(cols, minlength=A)


def _edges_frame(
    rng: np.random.Generator,
    t0: int,
    users: Users,
    authors: Authors,
    u: np.ndarray,
    a: np.ndarray,
    kind: str,
) -> pl.DataFrame:
    ts = t0 + rng.integers(0, 5 * HOUR_MS, size=len(u))
    return pl.DataFrame(
        {
            "user_id": users.ids[u],
            "target_user_id": authors.ids[a],
            "kind": [kind] * len(u),
            "created_at_ms": ts.astype(np.int64),
        },
        schema=_EDGE_SCHEMA,
    )


def draw_muted_keywords(
    c: WorldConfig, rng: np.random.Generator, users: Users, vocab: list[list[str]]
) -> pl.DataFrame:
    """1-2 words of a topic the user does not care about (topic words, so they match post text)."""
    U = c.n_users
    mk_users = np.flatnonzero(rng.random(U) < c.muted_keyword_frac)
    mk_topic = row_choice((users.pref[mk_users] == 0).astype(np.float64), rng)
    mk_n = rng.integers(1, 3, size=len(mk_users))
    mk_u = np.repeat(mk_users, mk_n)
    mk_t = np.repeat(mk_topic, mk_n)
    mk_w = rng.integers(0, 1 << 30, size=len(mk_u))
    created = graph_start_ms(c) + rng.integers(0, 5 * HOUR_MS, size=len(mk_u))
    return (
        pl.DataFrame(
            {
                "user_id": users.ids[mk_u],
                "keyword": [vocab[t][i % len(vocab[t])] for t, i in zip(mk_t, mk_w, strict=True)],
                "created_at_ms": created.astype(np.int64),
            },
            schema={"user_id": pl.Int64, "keyword": pl.Utf8, "created_at_ms": pl.Int64},
        )
        .unique(["user_id", "keyword"], keep="first", maintain_order=True)
        .sort(["created_at_ms", "user_id", "keyword"])
    )
