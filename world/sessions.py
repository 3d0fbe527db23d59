"""World generator section "engagement sessions": who is shown which post when, and the labels the
ground-truth engagement model draws for each impression (the `engagements` log and the `oracle`)."""

from __future__ import annotations

import numpy as np
import polars as pl

from protos import events_pb2
from world import engagement_model as em
from world.config import HOUR_MS, WorldConfig
from world.population import Authors, Users
from world.posts import Posts
from world.sampling import csr, draw_members, row_choice
from world.social_graph import FollowGraph

PS = events_pb2.ProductSurface


def draw_sessions(
    c: WorldConfig, rng: np.random.Generator, users: Users, authors: Authors, graph: FollowGraph, posts: Posts
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(engagements, oracle). The order of these calls is the order of the random draws: keep it."""
    u, post = _candidates(c, rng, users, graph, posts)
    u, post, ts = _impression_times(c, rng, u, post, posts)
    u, post, ts = _first_impressions(c, u, post, ts)
    a = posts.author[post]
    in_network = np.isin(u * c.n_authors + a, graph.key, assume_unique=False)
    feats = em.ImpressionFeatures(
        pref=users.pref[u, posts.topic[post]],
        author_quality=authors.quality[a],
        post_quality=posts.quality[post],
        in_network=in_network,
        has_video=posts.has_video[post],
        spam=posts.spam[post],
        nsfw=posts.nsfw[post],
    )
    probs = em.action_probabilities(feats, c.gate_slope, c.gate_center, c.in_network_logit_boost)
    gate = em.affinity_gate(feats, c.gate_slope, c.gate_center, c.in_network_logit_boost)
    surface = _surfaces(rng, in_network)
    imp, action, ets, dwell = _label_rows(c, rng, ts, probs, gate)
    engagements = pl.DataFrame(
        {
            "user_id": users.ids[u[imp]],
            "post_id": posts.post_ids[post[imp]],
            "author_id": authors.ids[a[imp]],
            "action": action,
            "timestamp_ms": ets,
            "product_surface": surface[imp],
            "dwell_ms": dwell,
        }
    )
    oracle = pl.DataFrame(
        {
            "user_id": users.ids[u],
            "post_id": posts.post_ids[post],
            "timestamp_ms": ts,
            "in_network": in_network,
            **{em.oracle_column(k): v.astype(np.float64) for k, v in probs.items()},
        }
    )
    return engagements, oracle


def _candidates(
    c: WorldConfig, rng: np.random.Generator, users: Users, graph: FollowGraph, posts: Posts
) -> tuple[np.ndarray, np.ndarray]:
    """(user rows, post rows) of more draws than `n_impressions`, users ∝ activity. In-network: a
    followed author, then one of their posts; out-of-network (and in-network draws of authors without
    posts): a topic, mostly the user's, then a post of that topic ∝ popularity."""
    U, A, T = c.n_users, c.n_authors, c.n_topics
    fu, fa, author = graph.fu, graph.fa, posts.author
    M0 = int(c.n_impressions * 1.4) + 64
    u = rng.choice(U, size=M0, p=users.activity / users.activity.sum())
    post = np.full(M0, -1, dtype=np.int64)

    f_order, f_start, deg = csr(fu, U)
    p_order, p_start, p_count = csr(author, A)
    inn = (deg[u] > 0) & (rng.random(M0) < c.in_network_frac)
    fa_pick = fa[draw_members(f_order, f_start, deg, u[inn], rng)]
    has_posts = p_count[fa_pick] > 0
    post[np.flatnonzero(inn)[has_posts]] = draw_members(p_order, p_start, p_count, fa_pick, rng)[has_posts]

    oon = post < 0
    ou = u[oon]
    t = np.where(
        rng.random(len(ou)) < c.oon_topic_frac, row_choice(users.pref[ou], rng), rng.integers(0, T, len(ou))
    )
    oon_post = np.full(len(ou), -1, dtype=np.int64)
    for k in range(T):
        sel = np.flatnonzero(t == k)
        in_topic = np.flatnonzero(posts.topic == k)
        if len(sel) == 0 or len(in_topic) == 0:
            continue
        cum = np.cumsum(posts.popularity[in_topic])
        j = np.searchsorted(cum, rng.random(len(sel)) * cum[-1], side="right")
        oon_post[sel] = in_topic[np.minimum(j, len(in_topic) - 1)]
    post[np.flatnonzero(oon)] = oon_post
    ok = post >= 0
    return u[ok], post[ok]


def _impression_times(
    c: WorldConfig, rng: np.random.Generator, u: np.ndarray, post: np.ndarray, posts: Posts
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Creation + lognormal delay; past `now` -> uniform in (creation, now]. Impressions after the
    post's deletion are dropped."""
    created, deleted_at = posts.created, posts.deleted_at
    delay = np.exp(rng.normal(np.log(c.history_delay_h * HOUR_MS), 1.0, size=len(u))).astype(np.int64)
    ts = created[post] + np.maximum(delay, 1_000)
    late = ts > c.now_ms
    span = c.now_ms - created[post]
    ts[late] = created[post][late] + 1 + (rng.random(late.sum()) * (span[late] - 1)).astype(np.int64)
    alive = (deleted_at[post] == 0) | (ts < deleted_at[post])
    return u[alive], post[alive], ts[alive]


def _first_impressions(
    c: WorldConfig, u: np.ndarray, post: np.ndarray, ts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (user, post) impressed at most once; the first `n_impressions` draws, in time order."""
    _, first = np.unique(u * c.n_posts + post, return_index=True)
    keep = np.sort(first)[: c.n_impressions]
    u, post, ts = u[keep], post[keep], ts[keep]
    order = np.argsort(ts, kind="stable")
    return u[order], post[order], ts[order]


def _surfaces(rng: np.random.Generator, in_network: np.ndarray) -> np.ndarray:
    """Mostly home timeline; otherwise ranked following in-network, explore / search out of it."""
    surface = np.full(len(in_network), PS.PRODUCT_SURFACE_HOME_TIMELINE, dtype=np.int32)
    rs = rng.random(len(in_network))
    surface[in_network & (rs > 0.9)] = PS.PRODUCT_SURFACE_RANKED_FOLLOWING
    surface[~in_network & (rs > 0.92)] = PS.PRODUCT_SURFACE_EXPLORE
    surface[~in_network & (rs > 0.97)] = PS.PRODUCT_SURFACE_SEARCH
    return surface


def _label_rows(
    c: WorldConfig, rng: np.random.Generator, ts: np.ndarray, probs: dict[int, np.ndarray], gate: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Log rows (impression index, action, timestamp, dwell ms): one IMPRESSION row per impression,
    then one row per fired action, each an independent Bernoulli draw (dwelled / not dwelled are
    complementary), 0.2-60 s after the impression; sorted by time, the impression first on ties."""
    M = len(ts)
    rows_imp, rows_action, rows_ts, rows_dwell = (
        [np.arange(M)],
        [np.full(M, em.IMPRESSION)],
        [ts],
        [np.zeros(M)],
    )
    dwell_all = em.dwell_ms(gate, rng)
    dwelled = rng.random(M) < probs[em.DWELLED]
    for action in em.MODELLED_ACTIONS:
        if action == em.DWELLED:
            fired = dwelled
        elif action == em.NOT_DWELLED:
            fired = ~dwelled
        else:
            fired = rng.random(M) < probs[action]
        idx = np.flatnonzero(fired)
        rows_imp.append(idx)
        rows_action.append(np.full(len(idx), action))
        offset = rng.integers(200, 60_000, size=len(idx))
        rows_ts.append(np.minimum(ts[idx] + offset, c.now_ms))
        rows_dwell.append(dwell_all[idx] if action == em.DWELLED else np.zeros(len(idx)))
    imp = np.concatenate(rows_imp)
    action = np.concatenate(rows_action).astype(np.int32)
    ets = np.concatenate(rows_ts).astype(np.int64)
    is_action = (action != em.IMPRESSION).astype(np.int8)
    order = np.lexsort((action, is_action, ets))
    dwell = np.concatenate(rows_dwell)[order].astype(np.int64)
    return imp[order], action[order], ets[order], dwell
