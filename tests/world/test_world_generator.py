"""Synthetic world: determinism, invariants of every frame, and the planted engagement structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from foryou.core.snowflake import timestamps_ms
from phoenix.log_dir import ENGAGEMENTS_FILE, ORACLE_FILE, POSTS_FILE, resolve_logs
from world import World, WorldConfig, generate_world
from world import engagement_model as em
from world.config import HOUR_MS


@pytest.fixture(scope="module")
def tiny() -> World:
    return generate_world(WorldConfig.tiny(seed=7))


@pytest.fixture(scope="module")
def demo() -> World:
    return generate_world(WorldConfig.demo(seed=3))


def _labels(world: World) -> pl.DataFrame:
    """Oracle rows joined with a 0/1 column per modelled action."""
    acts = (
        world.engagements.filter(pl.col("action") != em.IMPRESSION)
        .with_columns(pl.lit(1, pl.Int8).alias("y"))
        .pivot(on="action", index=["user_id", "post_id"], values="y", aggregate_function="max")
    )
    acts = acts.rename({c: f"y_{c}" for c in acts.columns if c not in ("user_id", "post_id")})
    out = world.oracle.join(acts, on=["user_id", "post_id"], how="left")
    return out.with_columns(pl.col(c).fill_null(0) for c in out.columns if c.startswith("y_"))


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    # average ranks over ties
    s = score[order]
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks[order])
    ranks[order] = (sums / counts)[inv]
    pos = y.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_same_seed_same_world_and_different_seed_differs() -> None:
    a = generate_world(WorldConfig.tiny(seed=11))
    b = generate_world(WorldConfig.tiny(seed=11))
    c = generate_world(WorldConfig.tiny(seed=12))
    assert a.equals(b)
    assert not a.posts.equals(c.posts)
    assert not a.engagements.equals(c.engagements)


def test_save_load_roundtrip(tiny: World, tmp_path: Path) -> None:
    d = tiny.save(tmp_path / "w")
    for name in ("posts", "engagements", "oracle", "follows", "muted_keywords", "users", "authors"):
        assert (d / f"{name}.parquet").exists()
    assert (d / "world.json").exists()
    back = World.load(d)
    assert back.equals(tiny)
    assert back.topics == tiny.topics


def test_saved_world_is_a_phoenix_log_directory(tiny: World, tmp_path: Path) -> None:
    d = tiny.save(tmp_path / "w")
    logs = resolve_logs(d)
    assert logs.engagements == d / ENGAGEMENTS_FILE
    assert logs.oracle == d / ORACLE_FILE and logs.posts == d / POSTS_FILE
    assert pl.read_parquet(logs.engagements).equals(tiny.engagements)


def test_sizes_follow_config(tiny: World) -> None:
    c = tiny.config
    assert tiny.users.height == c.n_users + c.n_new_users and tiny.authors.height == c.n_authors
    assert tiny.posts.height == c.n_posts
    assert tiny.oracle.height == c.n_impressions
    assert tiny.impressions.height == c.n_impressions


def test_ids_and_posts_are_consistent(tiny: World) -> None:
    p, c = tiny.posts, tiny.config
    ids = p["post_id"].to_numpy()
    assert len(np.unique(ids)) == len(ids)
    assert np.array_equal(timestamps_ms(ids), p["created_at_ms"].to_numpy())
    assert p["created_at_ms"].min() >= c.now_ms - int(c.post_window_h * HOUR_MS)
    assert p["created_at_ms"].max() < c.now_ms
    users, authors = set(tiny.users["user_id"]), set(tiny.authors["author_id"])
    assert not users & authors and not (users | authors) & set(ids.tolist())
    assert set(p["author_id"]) <= authors
    by_id = {r["post_id"]: r for r in p.iter_rows(named=True)}
    kinds = {"reply": 0, "repost": 0, "quote": 0}
    for r in p.iter_rows(named=True):
        if r["is_reply"]:
            kinds["reply"] += 1
            parent = by_id[r["in_reply_to_post_id"]]
            assert parent["created_at_ms"] <= r["created_at_ms"]
            assert r["in_reply_to_user_id"] == parent["author_id"]
            assert r["conversation_id"] == parent["conversation_id"]
        else:
            assert r["in_reply_to_post_id"] == 0 and r["in_reply_to_user_id"] == 0
        if r["is_retweet"]:
            kinds["repost"] += 1
            src = by_id[r["source_post_id"]]
            assert not src["is_retweet"] and src["author_id"] == r["source_user_id"] != r["author_id"]
            assert r["has_video"] == src["has_video"] and r["text"].endswith(src["text"])
        if r["quoted_post_id"]:
            kinds["quote"] += 1
            assert by_id[r["quoted_post_id"]]["author_id"] == r["quoted_user_id"]
            assert r["conversation_id"] == r["post_id"]
        if not r["is_reply"] and not r["is_retweet"]:
            assert r["conversation_id"] == r["post_id"]
        assert (r["video_duration_ms"] > 0) == r["has_video"]
    assert min(kinds.values()) > 20
    labels = p["labels"].explode().drop_nulls()
    assert {"spam", "nsfw"} <= set(labels)
    assert 0 < p["subscriber_only"].sum() < 0.1 * p.height
    assert len(tiny.deleted_post_ids) >= 2
    d = tiny.deletes
    assert (
        d["deleted_at_ms"] > p.filter(pl.col("post_id").is_in(d["post_id"].implode()))["created_at_ms"]
    ).all()


def test_engagement_log_invariants(tiny: World) -> None:
    e, c = tiny.engagements, tiny.config
    assert e.columns == [
        "user_id",
        "post_id",
        "author_id",
        "action",
        "timestamp_ms",
        "product_surface",
        "dwell_ms",
    ]
    assert e["timestamp_ms"].is_sorted()
    assert e["timestamp_ms"].max() <= c.now_ms
    imp = e.filter(pl.col("action") == em.IMPRESSION)
    assert imp.select("user_id", "post_id").is_unique().all()
    joined = e.join(
        imp.select("user_id", "post_id", pl.col("timestamp_ms").alias("imp_ts")),
        on=["user_id", "post_id"],
        how="left",
    )
    assert joined["imp_ts"].null_count() == 0  # every action has its impression
    assert (joined["timestamp_ms"] >= joined["imp_ts"]).all()
    posts = tiny.posts.select("post_id", "author_id", "created_at_ms", "has_video", "deleted_at_ms")
    j = e.join(posts, on="post_id", how="left", suffix="_post")
    assert (j["author_id"] == j["author_id_post"]).all()
    assert (j["timestamp_ms"] > j["created_at_ms"]).all()
    dead = j.filter((pl.col("deleted_at_ms") > 0) & (pl.col("action") == em.IMPRESSION))
    assert (dead["timestamp_ms"] < dead["deleted_at_ms"]).all()
    assert j.filter(pl.col("action") == em.VQV)["has_video"].all()
    assert (e.filter(pl.col("action") == em.DWELLED)["dwell_ms"] >= 10_000).all()
    assert (e.filter(pl.col("action") != em.DWELLED)["dwell_ms"] == 0).all()
    # every impression is exactly one of dwelled / not dwelled
    dw = e.filter(pl.col("action").is_in([em.DWELLED, em.NOT_DWELLED]))
    assert dw.height == imp.height and dw.select("user_id", "post_id").is_unique().all()
    surfaces = imp["product_surface"].value_counts().sort("count", descending=True)
    assert surfaces["product_surface"][0] == 1 and surfaces["count"][0] > 0.85 * imp.height
    assert set(e["action"].unique()) == {*em.MODELLED_ACTIONS, em.IMPRESSION}
    # oracle rows are the impressions, in the same order
    o = tiny.oracle
    assert o.select("user_id", "post_id", "timestamp_ms").equals(
        imp.select("user_id", "post_id", "timestamp_ms")
    )
    for a in em.MODELLED_ACTIONS:
        col = o[em.oracle_column(a)]
        assert col.min() >= 0.0 and col.max() <= 1.0


def test_follow_graph_matches_topics_and_popularity(demo: World) -> None:
    f = demo.follows
    assert set(f["kind"].unique()) == {"follow", "block", "mute", "subscribe", "follow_back"}
    assert f.select("user_id", "target_user_id", "kind").is_unique().all()
    fol = f.filter(pl.col("kind") == "follow")
    utop = demo.users.select("user_id", "topics")
    atop = demo.authors.select(pl.col("author_id").alias("target_user_id"), "primary_topic")
    j = fol.join(utop, on="user_id").join(atop, on="target_user_id")
    match = j.select(pl.col("topics").list.contains(pl.col("primary_topic")).mean()).item()
    # random follows would match ~3/16 of the time
    assert match > 0.6
    counts = fol.group_by("target_user_id").len()
    a = demo.authors.join(counts.rename({"target_user_id": "author_id"}), on="author_id", how="left")
    assert (a["follower_count"] == a["len"].fill_null(0)).all()
    assert np.corrcoef(a["popularity"].to_numpy(), a["follower_count"].to_numpy())[0, 1] > 0.3
    # blocked / muted authors are not followed by the same user
    neg = f.filter(pl.col("kind").is_in(["block", "mute"])).select("user_id", "target_user_id")
    assert neg.join(fol, on=["user_id", "target_user_id"], how="inner").height == 0
    subs = f.filter(pl.col("kind") == "subscribe").select("user_id", "target_user_id")
    assert subs.join(fol, on=["user_id", "target_user_id"], how="anti").height == 0
    mk = demo.muted_keywords.join(utop, on="user_id")
    vocab = demo.topic_words
    for uid, kw, topics in mk.select("user_id", "keyword", "topics").rows():
        owner = next(t for t, ws in enumerate(vocab) if kw in ws)
        assert owner not in topics, (uid, kw)
    # muted keywords occur in post text, so a keyword filter has something to remove
    kw = mk["keyword"][0]
    assert demo.posts.filter(pl.col("text").str.contains(rf"\b{kw}\b")).height > 0


def test_planted_structure(demo: World) -> None:
    lab = _labels(demo)
    posts = demo.posts.select("post_id", "topic", "quality", "labels", "author_id")
    authors = demo.authors.select("author_id", pl.col("quality").alias("aq"))
    users = demo.users.select("user_id", "topics")
    j = lab.join(posts, on="post_id").join(authors, on="author_id").join(users, on="user_id")
    j = j.with_columns(
        pl.col("topics").list.contains(pl.col("topic")).alias("on_topic"),
        (pl.col("labels").list.len() > 0).alias("labelled"),
        (pl.col("quality") * pl.col("aq")).alias("q"),
    )
    fav = f"y_{em.FAV}"
    neg_cols = [f"y_{a}" for a in em.NEGATIVE_ACTIONS]
    j = j.with_columns(pl.max_horizontal(neg_cols).alias("neg"))
    on, off = j.filter("on_topic"), j.filter(~pl.col("on_topic"))
    # users engage more with their topics
    assert on[fav].mean() > 1.5 * off[fav].mean()
    # in-network boost
    assert j.filter("in_network")[fav].mean() > 1.2 * j.filter(~pl.col("in_network"))[fav].mean()
    # negatives concentrate on off-topic, low-quality and labelled posts
    assert off["neg"].mean() > 2 * on["neg"].mean()
    lowq, highq = j.filter(pl.col("q") < 0.15), j.filter(pl.col("q") > 0.35)
    assert lowq["neg"].mean() > 3 * highq["neg"].mean()
    assert j.filter("labelled")["neg"].mean() > 3 * j.filter(~pl.col("labelled"))["neg"].mean()
    report = f"y_{em.REPORT}"
    assert j.filter("labelled")[report].mean() > 5 * j.filter(~pl.col("labelled"))[report].mean()


def test_oracle_is_calibrated_and_separates(demo: World) -> None:
    lab = _labels(demo)
    for action in (em.FAV, em.CLICK, em.REPLY, em.REPOST, em.NOT_INTERESTED, em.DWELLED):
        p = lab[em.oracle_column(action)].to_numpy()
        y = lab[f"y_{action}"].to_numpy()
        # the labels were drawn from exactly these probabilities
        expected, observed = p.sum(), y.sum()
        assert abs(observed - expected) < 4 * np.sqrt(expected) + 5, action
        assert _auc(p, y) > 0.6, action
    # every action the model knows is separable by its oracle probability
    neg = lab.select(pl.max_horizontal([f"y_{a}" for a in em.NEGATIVE_ACTIONS])).to_series().to_numpy()
    assert _auc(lab[em.oracle_column(em.NOT_INTERESTED)].to_numpy(), neg) > 0.7
    assert _auc(lab[em.oracle_column(em.FAV)].to_numpy(), lab[f"y_{em.FAV}"].to_numpy()) > 0.65


def test_signal_is_learnable_from_ids_and_history(demo: World) -> None:
    """A count model over ids and history only (the author's fav rate; the share of the user's
    history spent on, and engaged with, the author's topic), fitted on the first 70% of impressions,
    ranks the rest well above chance, and below the oracle."""
    lab = _labels(demo).with_row_index("i")
    fav, dw = f"y_{em.FAV}", f"y_{em.DWELLED}"
    topic_of = demo.authors.select("author_id", pl.col("primary_topic").alias("t"))
    j = (
        lab.join(demo.posts.select("post_id", "author_id"), on="post_id")
        .join(topic_of, on="author_id")
        .sort("i")
    )
    cut = int(0.7 * j.height)
    train, test = j.head(cut), j.tail(j.height - cut)
    prior = train[fav].mean()
    a_rate = train.group_by("author_id").agg(
        ((pl.col(fav).sum() + 5 * prior) / (pl.len() + 5)).alias("a_rate")
    )
    hist = train.group_by("user_id", "t").agg((pl.col(dw).sum() + pl.col(fav).sum()).alias("pos"))
    total = train.group_by("user_id").agg(pl.len().alias("n"))
    scored = (
        test.join(a_rate, on="author_id", how="left")
        .join(hist, on=["user_id", "t"], how="left")
        .join(total, on="user_id", how="left")
        .with_columns(pl.col("a_rate").fill_null(prior), pl.col("pos").fill_null(0), pl.col("n").fill_null(0))
    )
    user_topic = ((scored["pos"] + 0.5) / (scored["n"] + 5)).to_numpy()
    y = scored[fav].to_numpy()
    learned = _auc(scored["a_rate"].to_numpy() * user_topic, y)
    oracle = _auc(scored[em.oracle_column(em.FAV)].to_numpy(), y)
    assert learned > 0.58
    assert oracle > learned + 0.03  # post quality of fresh posts is not knowable from ids


def test_rebased_world_moves_time_and_ids_consistently(tiny: World) -> None:
    now = tiny.config.now_ms + 123 * 24 * HOUR_MS + 4567
    moved = tiny.rebased(now)
    assert moved.config.now_ms == now
    p = moved.posts
    assert np.array_equal(timestamps_ms(p["post_id"].to_numpy()), p["created_at_ms"].to_numpy())
    d = now - tiny.config.now_ms
    assert (p["created_at_ms"] - tiny.posts["created_at_ms"] == d).all()
    ids = set(p["post_id"].to_list())
    for col in ("in_reply_to_post_id", "source_post_id", "quoted_post_id", "conversation_id"):
        refs = set(p.filter(pl.col(col) != 0)[col].to_list())
        assert refs <= ids, col
    assert set(moved.engagements["post_id"].unique()) <= ids
    assert moved.engagements["timestamp_ms"].max() <= now
    assert (moved.oracle["post_id"] == moved.impressions["post_id"]).all()
    assert set(moved.deleted_post_ids.tolist()) <= ids and len(moved.deleted_post_ids) == len(
        tiny.deleted_post_ids
    )
    # new users' ids are creation snowflakes: they move with time, their follows with them
    new = moved.users.filter(pl.col("created_at_ms") > 0)
    assert new.height == tiny.config.n_new_users
    assert np.array_equal(timestamps_ms(new["user_id"].to_numpy()), new["created_at_ms"].to_numpy())
    assert set(moved.follows["user_id"].to_list()) <= set(moved.users["user_id"]) | set(
        moved.authors["author_id"]
    )
    back = moved.rebased(tiny.config.now_ms)
    assert all(
        getattr(back, n).equals(getattr(tiny, n))
        for n in ("posts", "engagements", "oracle", "follows", "users")
    )


def test_october_features_leave_the_shared_stream_alone() -> None:
    """Mutual follows, media-only posts and new users come from their own random streams: with all
    three off, every impression, label and every other frame is the same (issue 19)."""
    on = generate_world(WorldConfig.tiny(seed=5))
    off = generate_world(WorldConfig.tiny(seed=5, mutual_follow_frac=0.0, media_only_frac=0.0, n_new_users=0))
    assert on.engagements.equals(off.engagements) and on.oracle.equals(off.oracle)
    assert on.posts.drop("text").equals(off.posts.drop("text"))
    assert on.muted_keywords.equals(off.muted_keywords)
    old = pl.col("user_id") < (1 << 22)
    assert on.follows.filter(old & (pl.col("kind") != "follow_back")).equals(off.follows)
    assert on.users.filter(old).equals(off.users)


def test_mutual_follows(demo: World) -> None:
    f = demo.follows
    fol = f.filter(pl.col("kind") == "follow").select("user_id", "target_user_id")
    back = f.filter(pl.col("kind") == "follow_back")
    assert back.height > 0.05 * fol.height
    # every follow back answers a follow of the same pair (author -> its follower), and comes later
    j = back.join(
        f.filter(pl.col("kind") == "follow").select(
            pl.col("user_id").alias("target_user_id"),
            pl.col("target_user_id").alias("user_id"),
            pl.col("created_at_ms").alias("followed_at"),
        ),
        on=["user_id", "target_user_id"],
    )
    assert j.height == back.height and (j["created_at_ms"] > j["followed_at"]).all()
    assert set(back["user_id"].to_list()) <= set(demo.authors["author_id"].to_list())
    # before the first post, like the rest of the graph
    assert back["created_at_ms"].max() < demo.posts["created_at_ms"].min()
    # small authors follow back more often than the most popular ones
    a = demo.authors.join(
        back.group_by(pl.col("user_id").alias("author_id")).len(), on="author_id", how="left"
    ).with_columns((pl.col("len").fill_null(0) / pl.col("follower_count").clip(1)).alias("rate"))
    top = a.sort("popularity", descending=True)
    assert top["rate"].head(10).mean() < top["rate"].tail(100).mean()


def test_media_only_posts(demo: World) -> None:
    p = demo.posts
    empty = p.filter(pl.col("text") == "")
    assert empty.height > 50
    assert empty["has_video"].all() and not empty["is_reply"].any() and not empty["is_retweet"].any()
    assert (empty["quoted_post_id"] == 0).all()
    # a repost of a media-only post is "RT @author: " and nothing else
    reposts = p.filter(pl.col("source_post_id").is_in(empty["post_id"].implode()))
    assert reposts.height > 0 and reposts["text"].str.ends_with(": ").all()


def test_new_users(tiny: World) -> None:
    c = tiny.config
    new = tiny.users.filter(pl.col("created_at_ms") > 0)
    assert new.height == c.n_new_users
    assert (tiny.users.filter(pl.col("created_at_ms") == 0)["user_id"] <= c.n_users).all()
    ids = new["user_id"].to_numpy()
    # snowflake ids of the account creation, minutes before now
    assert np.array_equal(timestamps_ms(ids), new["created_at_ms"].to_numpy())
    age_min = (c.now_ms - new["created_at_ms"].to_numpy()) / 60_000
    assert ((age_min >= c.new_user_min_age_min) & (age_min <= c.new_user_max_age_min)).all()
    assert not set(ids.tolist()) & set(tiny.posts["post_id"].to_list())
    # a few onboarding follows (at least NEW_USER_MIN_FOLLOWING = 5), after the account exists
    fol = tiny.follows.filter(pl.col("user_id").is_in(ids.tolist()))
    assert set(fol["kind"].to_list()) == {"follow"}
    per_user = fol.group_by("user_id").len()["len"]
    assert len(per_user) == c.n_new_users
    assert per_user.min() >= c.new_user_min_follows and per_user.max() <= c.new_user_max_follows
    created = dict(zip(new["user_id"], new["created_at_ms"], strict=True))
    assert all(t > created[u] and t < c.now_ms for u, t in fol.select("user_id", "created_at_ms").rows())
    # no history: nothing in the log
    assert not tiny.engagements.filter(pl.col("user_id").is_in(ids.tolist())).height
    # their follows count in the authors' follower counts
    counts = tiny.follows.filter(pl.col("kind") == "follow").group_by("target_user_id").len()
    a = tiny.authors.join(counts.rename({"target_user_id": "author_id"}), on="author_id", how="left")
    assert (a["follower_count"] == a["len"].fill_null(0)).all()


def test_video_aspect_ratios(demo: World) -> None:
    p = demo.posts
    videos = p.filter(pl.col("has_video"))
    assert (p.filter(~pl.col("has_video"))["video_aspect_ratio"] == 0).all()
    shares = videos["video_aspect_ratio"].round(4).value_counts(normalize=True).sort("video_aspect_ratio")
    assert np.allclose(shares["video_aspect_ratio"].to_numpy(), [9 / 16, 1.0, 16 / 9], atol=1e-4)
    assert np.allclose(shares["proportion"].to_numpy(), [0.35, 0.15, 0.5], atol=0.03)
    # a repost shows its source's video
    src = p.select(pl.col("post_id").alias("source_post_id"), pl.col("video_aspect_ratio").alias("src"))
    rep = p.filter(pl.col("is_retweet")).join(src, on="source_post_id")
    assert (rep["video_aspect_ratio"] == rep["src"]).all()
