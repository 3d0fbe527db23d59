"""Synthetic world generator (reference §2.4.5): topics, authors, users, a follow graph, posts with
snowflake ids and engagement sessions whose labels are drawn from `engagement_model`. Fully
vectorised with numpy; deterministic from `WorldConfig.seed`."""

from __future__ import annotations

import numpy as np
import polars as pl

from foryou.core.snowflake import make_ids
from protos import events_pb2
from world import engagement_model as em
from world.config import HOUR_MS, WorldConfig
from world.sid import multimodal_vectors, rq_kmeans
from world.vocab import COMMON_WORDS, topic_names, topic_vocab
from world.world import World

MINUTE_MS = 60_000
PS = events_pb2.ProductSurface
KIND_ORIGINAL, KIND_REPLY, KIND_REPOST, KIND_QUOTE = 0, 1, 2, 3
_FOLLOW_CHUNK = 2048  # users per chunk of the user x author follow-score matrix


def _gumbel_topk(logw: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sampling without replacement per row (Gumbel top-k). Returns (row, col) pairs."""
    keys = logw + rng.gumbel(size=logw.shape)
    kmax = int(min(k.max(initial=0), logw.shape[1]))
    if kmax == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    keep = (np.arange(kmax)[None, :] < k[:, None]) & np.isfinite(np.take_along_axis(logw, top, axis=1))
    rows = np.broadcast_to(np.arange(logw.shape[0])[:, None], top.shape)
    return rows[keep].astype(np.int64), top[keep].astype(np.int64)


def _row_choice(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column per row, ∝ the row's weights (rows with zero total get column 0)."""
    cum = np.cumsum(weights, axis=1)
    r = rng.random(weights.shape[0]) * cum[:, -1]
    return np.minimum((cum <= r[:, None]).sum(axis=1), weights.shape[1] - 1)


def _csr(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group indices by key: (order, start, count) with order[start[k]:start[k]+count[k]] = rows of k."""
    order = np.argsort(keys, kind="stable")
    count = np.bincount(keys, minlength=n)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return order, start, count


def _post_sids(c: WorldConfig, topic: np.ndarray, author: np.ndarray) -> np.ndarray:
    """int16 [N, sid_levels] semantic ids of the posts' content."""
    if c.sid_levels <= 0:
        return np.zeros((len(topic), 0), np.int16)
    rng = np.random.default_rng([c.seed, 0x51D])  # own stream: the rest of the world is unchanged
    vectors = multimodal_vectors(topic, author, c.n_topics, c.n_authors, c.mm_dim, rng)
    return rq_kmeans(vectors, c.sid_levels, c.sid_codebook, seed=c.seed)


def generate_world(config: WorldConfig) -> World:
    config.validate()
    rng = np.random.default_rng(config.seed)
    c = config
    T, U, A, N = c.n_topics, c.n_users, c.n_authors, c.n_posts
    names = topic_names(T)
    vocab = topic_vocab(T)
    user_ids = np.arange(1, U + 1, dtype=np.int64)
    author_ids = np.arange(U + 1, U + A + 1, dtype=np.int64)  # one id space, authors after users

    # --- authors ---
    primary = rng.integers(0, T, size=A)
    secondary = (primary + rng.integers(1, T, size=A)) % T
    a_quality = rng.beta(2.0, 2.0, size=A)
    a_nsfw = rng.random(A) < c.nsfw_author_frac
    a_pop = (rng.permutation(A) + 1.0) ** -c.author_popularity_zipf
    a_pop /= a_pop.max()
    a_activity = rng.lognormal(0.0, 0.5, size=A)
    a_names = [f"{names[primary[i]]}_{i}_{author_ids[i]}" for i in range(A)]

    # --- users: 2-4 topics with Gamma(1.5) weights, normalised ---
    n_top = rng.integers(2, 5, size=U)
    topic_rank = np.argsort(rng.random((U, T)), axis=1)
    w = np.sort(rng.gamma(1.5, size=(U, T)), axis=1)[:, ::-1]
    w = np.where(np.arange(T)[None, :] < n_top[:, None], w, 0.0)
    w /= w[:, :1]  # favourite topic = 1 (reference normalises to sum 1; this widens the gate's range)
    pref = np.zeros((U, T))
    np.put_along_axis(pref, topic_rank, w, axis=1)
    u_activity = rng.lognormal(0.0, 0.6, size=U)

    # --- follow graph: users follow authors matching their topics, popular authors more ---
    k_follow = np.clip(rng.poisson(c.mean_follows * np.sqrt(u_activity)), 0, A)
    f_rows, f_cols = [], []
    for lo in range(0, U, _FOLLOW_CHUNK):
        hi = min(U, lo + _FOLLOW_CHUNK)
        score = pref[lo:hi, primary] + 0.5 * pref[lo:hi, secondary] + 0.02
        logw = 2.0 * np.log(score) + 0.5 * np.log(a_pop)[None, :]
        r, col = _gumbel_topk(logw, k_follow[lo:hi], rng)
        f_rows.append(r + lo)
        f_cols.append(col)
    fu, fa = np.concatenate(f_rows), np.concatenate(f_cols)
    follow_key = np.sort(fu * A + fa)

    # blocks / mutes: an author the user does not follow, skewed to low quality and off-topic
    followed = np.zeros((U, A), dtype=bool) if U * A <= 50_000_000 else None
    if followed is None:
        raise ValueError("n_users x n_authors too large for the dense follow mask")
    followed[fu, fa] = True
    excluded = followed.copy()
    neg_edges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind, frac in (("block", c.block_frac), ("mute", c.mute_frac)):
        us = np.flatnonzero(rng.random(U) < frac)
        bad_w = (1.05 - a_quality)[None, :] / (0.05 + pref[us][:, primary])
        wts = np.where(excluded[us], 0.0, bad_w)
        ok = wts.sum(axis=1) > 0
        us, cols = us[ok], _row_choice(wts[ok], rng)
        excluded[us, cols] = True
        neg_edges[kind] = (us, cols)
    deg = np.bincount(fu, minlength=U)
    subs_u = np.flatnonzero((rng.random(U) < c.subscribe_frac) & (deg > 0))
    f_order, f_start, _ = _csr(fu, U)
    subs_a = fa[f_order[f_start[subs_u] + (rng.random(len(subs_u)) * deg[subs_u]).astype(np.int64)]]

    graph_t0 = c.now_ms - int(c.post_window_h * HOUR_MS) - 6 * HOUR_MS  # graph exists before posts

    def _edges(u: np.ndarray, a: np.ndarray, kind: str) -> pl.DataFrame:
        ts = graph_t0 + rng.integers(0, 5 * HOUR_MS, size=len(u))
        return pl.DataFrame(
            {
                "user_id": user_ids[u],
                "target_user_id": author_ids[a],
                "kind": [kind] * len(u),
                "created_at_ms": ts.astype(np.int64),
            },
            schema={
                "user_id": pl.Int64,
                "target_user_id": pl.Int64,
                "kind": pl.Utf8,
                "created_at_ms": pl.Int64,
            },
        )

    follows = pl.concat(
        [
            _edges(fu, fa, "follow"),
            _edges(*neg_edges["block"], "block"),
            _edges(*neg_edges["mute"], "mute"),
            _edges(subs_u, subs_a, "subscribe"),
        ]
    ).sort(["created_at_ms", "user_id", "target_user_id", "kind"])
    follower_count = np.bincount(fa, minlength=A)

    # muted keywords: 1-2 words of a topic the user does not care about
    mk_users = np.flatnonzero(rng.random(U) < c.muted_keyword_frac)
    mk_topic = _row_choice((pref[mk_users] == 0).astype(np.float64), rng)
    mk_n = rng.integers(1, 3, size=len(mk_users))
    mk_u = np.repeat(mk_users, mk_n)
    mk_t = np.repeat(mk_topic, mk_n)
    mk_w = rng.integers(0, 1 << 30, size=len(mk_u))
    muted_keywords = (
        pl.DataFrame(
            {
                "user_id": user_ids[mk_u],
                "keyword": [vocab[t][i % len(vocab[t])] for t, i in zip(mk_t, mk_w, strict=True)],
                "created_at_ms": (graph_t0 + rng.integers(0, 5 * HOUR_MS, size=len(mk_u))).astype(np.int64),
            },
            schema={"user_id": pl.Int64, "keyword": pl.Utf8, "created_at_ms": pl.Int64},
        )
        .unique(["user_id", "keyword"], keep="first", maintain_order=True)
        .sort(["created_at_ms", "user_id", "keyword"])
    )

    # --- posts ---
    lo_ms = c.now_ms - int(c.post_window_h * HOUR_MS)
    hi_ms = c.now_ms - int(c.min_post_age_min * MINUTE_MS)
    created = np.sort(rng.integers(lo_ms, hi_ms, size=N)).astype(np.int64)
    r = rng.random(N)
    kind = np.full(N, KIND_ORIGINAL)
    kind[r < c.reply_frac + c.repost_frac + c.quote_frac] = KIND_QUOTE
    kind[r < c.reply_frac + c.repost_frac] = KIND_REPOST
    kind[r < c.reply_frac] = KIND_REPLY
    kind[: min(N, 10)] = KIND_ORIGINAL  # so every derived post has an earlier target
    author = rng.choice(A, size=N, p=a_activity / a_activity.sum())
    # targets: a uniformly chosen earlier non-repost post
    non_repost = np.flatnonzero(kind != KIND_REPOST)
    n_before = np.searchsorted(non_repost, np.arange(N))
    derived = kind != KIND_ORIGINAL
    target = np.full(N, -1, dtype=np.int64)
    target[derived] = non_repost[(rng.random(derived.sum()) * n_before[derived]).astype(np.int64)]
    # a repost is never of one's own post
    own = (kind == KIND_REPOST) & (author == author[np.maximum(target, 0)])
    author[own] = (author[own] + 1 + rng.integers(0, A - 1, size=own.sum())) % A if A > 1 else author[own]

    topic = np.where(rng.random(N) < c.secondary_topic_frac, secondary[author], primary[author])
    k = c.post_quality_concentration
    quality = rng.beta(k * a_quality[author], k * (1.0 - a_quality[author]))
    spam = rng.random(N) < c.spam_frac * 2.0 * (1.0 - a_quality[author])
    nsfw = a_nsfw[author] & (rng.random(N) < 0.8)
    quality = np.where(spam, quality * 0.3, quality)
    has_video = rng.random(N) < c.video_frac
    duration = np.clip(np.exp(rng.normal(np.log(30_000.0), 0.9, size=N)), 2_000, 600_000).astype(np.int64)
    subscriber_only = (kind == KIND_ORIGINAL) & (rng.random(N) < c.subscriber_only_frac)
    rank = rng.permutation(N)
    popularity = (rank + 1.0) ** -c.popularity_zipf * np.where(kind == KIND_REPLY, 0.5, 1.0)
    # replies inherit the parent's topic; reposts copy the source's content
    is_reply, is_repost = kind == KIND_REPLY, kind == KIND_REPOST
    topic[is_reply] = topic[target[is_reply]]
    for arr in (topic, quality, spam, nsfw, has_video, duration):
        arr[is_repost] = arr[target[is_repost]]
    duration = np.where(has_video, duration, 0)

    sids = _post_sids(c, topic, author)
    sids[is_repost] = sids[target[is_repost]]  # same content, same SID
    post_ids = make_ids(created, np.arange(N, dtype=np.int64))
    # conversation root: follow reply/repost targets to a fixed point (targets are never reposts)
    root = np.arange(N)
    root[derived & (kind != KIND_QUOTE)] = target[derived & (kind != KIND_QUOTE)]
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt

    # text: topic words mixed with common words; muted keywords match topic words
    n_words = rng.integers(6, 15, size=N)
    total = int(n_words.sum())
    from_topic = rng.random(total) < 0.45
    word_topic = np.repeat(topic, n_words)
    word_idx = rng.integers(0, 1 << 30, size=total)
    flat_vocab = [w for ws in vocab for w in ws]
    vocab_start = np.concatenate([[0], np.cumsum([len(ws) for ws in vocab])[:-1]])
    vocab_len = np.array([len(ws) for ws in vocab])
    topic_word = vocab_start[word_topic] + word_idx % vocab_len[word_topic]
    common_word = word_idx % len(COMMON_WORDS)
    words = np.where(from_topic, topic_word, len(flat_vocab) + common_word)
    lexicon = np.array(flat_vocab + COMMON_WORDS, dtype=object)
    ends = np.cumsum(n_words)
    texts = [" ".join(seg) for seg in np.split(lexicon[words], ends[:-1])]
    for i in np.flatnonzero(derived):
        j = target[i]
        if kind[i] == KIND_REPOST:
            texts[i] = f"RT @{a_names[author[j]]}: {texts[j]}"
        elif kind[i] == KIND_REPLY:
            texts[i] = f"@{a_names[author[j]]} {texts[i]}"

    tgt = np.maximum(target, 0)
    zero = np.zeros(N, dtype=np.int64)
    tgt_post, tgt_author = post_ids[tgt], author_ids[author[tgt]]
    deleted_at = np.zeros(N, dtype=np.int64)
    eligible = np.flatnonzero(created < c.now_ms - 4 * HOUR_MS)
    n_del = min(len(eligible), max(2, round(N * c.deleted_frac)))
    dels = rng.choice(eligible, size=n_del, replace=False) if n_del else np.empty(0, np.int64)
    deleted_at[dels] = created[dels] + rng.integers(10 * MINUTE_MS, 3 * HOUR_MS, size=n_del)

    posts = pl.DataFrame(
        {
            "post_id": post_ids,
            "author_id": author_ids[author],
            "created_at_ms": created,
            "text": texts,
            "is_reply": is_reply,
            "in_reply_to_post_id": np.where(is_reply, tgt_post, zero),
            "in_reply_to_user_id": np.where(is_reply, tgt_author, zero),
            "is_retweet": is_repost,
            "source_post_id": np.where(is_repost, tgt_post, zero),
            "source_user_id": np.where(is_repost, tgt_author, zero),
            "quoted_post_id": np.where(kind == KIND_QUOTE, tgt_post, zero),
            "quoted_user_id": np.where(kind == KIND_QUOTE, tgt_author, zero),
            "conversation_id": post_ids[root],
            "has_video": has_video,
            "video_duration_ms": duration,
            "subscriber_only": subscriber_only,
            "labels": [
                (["spam"] if s else []) + (["nsfw"] if n else []) for s, n in zip(spam, nsfw, strict=True)
            ],
            "topic": topic.astype(np.int32),
            "quality": quality,
            "popularity": popularity,
            "deleted_at_ms": deleted_at,
            "sid": list(sids),
        },
        schema_overrides={"labels": pl.List(pl.Utf8), "sid": pl.List(pl.Int16)},
    )

    # --- engagement sessions ---
    engagements, oracle = _sessions(
        c, rng, pref, u_activity, user_ids, author_ids, follow_key, fu, fa, a_quality,
        author, topic, quality, has_video, spam, nsfw, popularity, created, deleted_at, post_ids,
    )  # fmt: skip

    users = pl.DataFrame(
        {
            "user_id": user_ids,
            "screen_name": [f"user{u}" for u in user_ids],
            "topics": [list(topic_rank[i, : n_top[i]]) for i in range(U)],
            "topic_weights": [list(w[i, : n_top[i]]) for i in range(U)],
            "activity": u_activity,
        },
        schema_overrides={"topics": pl.List(pl.Int32), "topic_weights": pl.List(pl.Float64)},
    )
    authors = pl.DataFrame(
        {
            "author_id": author_ids,
            "screen_name": a_names,
            "quality": a_quality,
            "follower_count": follower_count.astype(np.int64),
            "primary_topic": primary.astype(np.int32),
            "secondary_topic": secondary.astype(np.int32),
            "topics": [[int(p), int(s)] for p, s in zip(primary, secondary, strict=True)],
            "nsfw": a_nsfw,
            "popularity": a_pop,
        },
        schema_overrides={"topics": pl.List(pl.Int32)},
    )
    return World(
        config=c,
        posts=posts,
        engagements=engagements,
        oracle=oracle,
        follows=follows,
        muted_keywords=muted_keywords,
        users=users,
        authors=authors,
        topics=names,
        topic_words=vocab,
    )


def _sessions(
    c: WorldConfig,
    rng: np.random.Generator,
    pref: np.ndarray,
    u_activity: np.ndarray,
    user_ids: np.ndarray,
    author_ids: np.ndarray,
    follow_key: np.ndarray,
    fu: np.ndarray,
    fa: np.ndarray,
    a_quality: np.ndarray,
    author: np.ndarray,
    topic: np.ndarray,
    quality: np.ndarray,
    has_video: np.ndarray,
    spam: np.ndarray,
    nsfw: np.ndarray,
    popularity: np.ndarray,
    created: np.ndarray,
    deleted_at: np.ndarray,
    post_ids: np.ndarray,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    U, A, N, T = len(user_ids), len(author_ids), len(post_ids), pref.shape[1]
    M0 = int(c.n_impressions * 1.4) + 64
    u = rng.choice(U, size=M0, p=u_activity / u_activity.sum())
    post = np.full(M0, -1, dtype=np.int64)

    # in-network: a followed author, then one of their posts
    deg = np.bincount(fu, minlength=U)
    f_order, f_start, _ = _csr(fu, U)
    p_order, p_start, p_count = _csr(author, A)
    inn = (deg[u] > 0) & (rng.random(M0) < c.in_network_frac)
    iu = u[inn]
    fa_pick = fa[f_order[f_start[iu] + (rng.random(len(iu)) * deg[iu]).astype(np.int64)]]
    has_posts = p_count[fa_pick] > 0
    pick = p_start[fa_pick] + (rng.random(len(iu)) * p_count[fa_pick]).astype(np.int64)
    post[np.flatnonzero(inn)[has_posts]] = p_order[np.minimum(pick, N - 1)][has_posts]

    # out-of-network: a topic (mostly the user's), then a post of that topic ∝ popularity
    oon = post < 0
    ou = u[oon]
    t = np.where(
        rng.random(len(ou)) < c.oon_topic_frac, _row_choice(pref[ou], rng), rng.integers(0, T, len(ou))
    )
    oon_post = np.full(len(ou), -1, dtype=np.int64)
    for k in range(T):
        sel = np.flatnonzero(t == k)
        in_topic = np.flatnonzero(topic == k)
        if len(sel) == 0 or len(in_topic) == 0:
            continue
        cum = np.cumsum(popularity[in_topic])
        j = np.searchsorted(cum, rng.random(len(sel)) * cum[-1], side="right")
        oon_post[sel] = in_topic[np.minimum(j, len(in_topic) - 1)]
    post[np.flatnonzero(oon)] = oon_post
    ok = post >= 0
    u, post = u[ok], post[ok]

    # impression time: creation + lognormal delay; past `now` -> uniform in (creation, now]
    delay = np.exp(rng.normal(np.log(c.history_delay_h * HOUR_MS), 1.0, size=len(u))).astype(np.int64)
    ts = created[post] + np.maximum(delay, 1_000)
    late = ts > c.now_ms
    span = c.now_ms - created[post]
    ts[late] = created[post][late] + 1 + (rng.random(late.sum()) * (span[late] - 1)).astype(np.int64)
    alive = (deleted_at[post] == 0) | (ts < deleted_at[post])
    u, post, ts = u[alive], post[alive], ts[alive]

    # each (user, post) impressed at most once; keep the first n_impressions draws
    _, first = np.unique(u * N + post, return_index=True)
    keep = np.sort(first)[: c.n_impressions]
    u, post, ts = u[keep], post[keep], ts[keep]
    order = np.argsort(ts, kind="stable")
    u, post, ts = u[order], post[order], ts[order]
    M = len(u)

    a = author[post]
    in_network = np.isin(u * A + a, follow_key, assume_unique=False)
    feats = em.ImpressionFeatures(
        pref=pref[u, topic[post]],
        author_quality=a_quality[a],
        post_quality=quality[post],
        in_network=in_network,
        has_video=has_video[post],
        spam=spam[post],
        nsfw=nsfw[post],
    )
    probs = em.action_probabilities(feats, c.gate_slope, c.gate_center, c.in_network_logit_boost)
    gate = em.affinity_gate(feats, c.gate_slope, c.gate_center, c.in_network_logit_boost)
    surface = np.full(M, PS.PRODUCT_SURFACE_HOME_TIMELINE, dtype=np.int32)
    rs = rng.random(M)
    surface[in_network & (rs > 0.9)] = PS.PRODUCT_SURFACE_RANKED_FOLLOWING
    surface[~in_network & (rs > 0.92)] = PS.PRODUCT_SURFACE_EXPLORE
    surface[~in_network & (rs > 0.97)] = PS.PRODUCT_SURFACE_SEARCH

    # labels: independent Bernoulli draws (dwelled / not-dwelled are complementary)
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
    order = np.lexsort((action, is_action, ets))  # by time; the impression first on ties
    imp, action, ets = imp[order], action[order], ets[order]
    engagements = pl.DataFrame(
        {
            "user_id": user_ids[u[imp]],
            "post_id": post_ids[post[imp]],
            "author_id": author_ids[a[imp]],
            "action": action,
            "timestamp_ms": ets,
            "product_surface": surface[imp],
            "dwell_ms": np.concatenate(rows_dwell)[order].astype(np.int64),
        }
    )
    oracle = pl.DataFrame(
        {
            "user_id": user_ids[u],
            "post_id": post_ids[post],
            "timestamp_ms": ts,
            "in_network": in_network,
            **{em.oracle_column(k): v.astype(np.float64) for k, v in probs.items()},
        }
    )
    return engagements, oracle
