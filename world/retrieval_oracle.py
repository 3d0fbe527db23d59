"""The retrieval oracle: every (user, corpus post) scored by the world's ground-truth engagement
model, handed to `phoenix.retrieval.evaluate.evaluate_retrieval` as its `oracle`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from phoenix.retrieval.train import NEGATIVE_ACTIONS, POSITIVE_ACTIONS, Corpus, Scorer
from world import engagement_model as em
from world.world import FILES, World


def retrieval_oracle(world_dir: str | Path) -> Callable[[Corpus], Scorer | None]:
    """The `oracle` argument of `evaluate_retrieval` for a log directory: the world's scorer when
    the directory is a world, else a factory answering None."""
    return lambda corpus: oracle_scorer(world_dir, corpus)


def oracle_scorer(world_dir: str | Path, corpus: Corpus) -> Scorer | None:
    """P(positive and no negative action | impression) from the world's engagement model for every
    (user, corpus post); None when `world_dir` is not a world with users/authors/follows."""
    d = Path(world_dir)
    if not d.is_dir() or not all((d / FILES[n]).exists() for n in ("users", "authors", "follows")):
        return None
    w = World.load(d)
    cfg = w.config
    posts = w.posts.select("post_id", "author_id", "topic", "quality", "has_video", "labels")
    posts = posts.join(pl.DataFrame({"post_id": corpus.post_ids}), on="post_id", how="right")
    posts = posts.join(
        w.authors.select("author_id", pl.col("quality").alias("aq")), on="author_id", how="left"
    )
    labels = posts["labels"].fill_null([]).to_list()
    topic = posts["topic"].fill_null(0).to_numpy()
    a_quality = posts["aq"].fill_null(0.0).to_numpy()
    q_post = posts["quality"].fill_null(0.0).to_numpy()
    has_video = posts["has_video"].fill_null(False).to_numpy()
    spam = np.array(["spam" in x for x in labels])
    nsfw = np.array(["nsfw" in x for x in labels])
    authors = posts["author_id"].fill_null(0).to_numpy()
    n_topics = cfg.n_topics
    # by user row: new users' ids are snowflakes (not usable as an index)
    row_of = {uid: i for i, uid in enumerate(w.users["user_id"].to_list())}
    pref = np.zeros((len(row_of), n_topics))
    for uid, ts, ws in w.users.select("user_id", "topics", "topic_weights").iter_rows():
        pref[row_of[uid], ts] = ws
    fol = w.follows.filter(pl.col("kind") == "follow").group_by("user_id").agg("target_user_id")
    followed = dict(zip(fol["user_id"].to_list(), fol["target_user_id"].to_list(), strict=True))

    def score(users: np.ndarray) -> np.ndarray:
        out = np.empty((len(users), len(authors)))
        for i, u in enumerate(users.tolist()):
            in_net = np.isin(authors, followed.get(u, []))
            f = em.ImpressionFeatures(
                pref=pref[row_of[u], topic] if u in row_of else np.zeros(len(topic)),
                author_quality=a_quality,
                post_quality=q_post,
                in_network=in_net,
                has_video=has_video,
                spam=spam,
                nsfw=nsfw,
            )
            p = em.action_probabilities(f, cfg.gate_slope, cfg.gate_center, cfg.in_network_logit_boost)
            none_pos = np.prod([1.0 - p[a] for a in POSITIVE_ACTIONS if a in p], axis=0)
            none_neg = np.prod([1.0 - p[a] for a in NEGATIVE_ACTIONS if a in p], axis=0)
            out[i] = (1.0 - none_pos) * none_neg
        return out

    return score
