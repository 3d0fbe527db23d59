"""Synthetic world generator: topics, authors, users, a follow graph, posts with snowflake ids and
engagement sessions whose labels are drawn from `engagement_model`. Fully vectorised with numpy;
deterministic from `WorldConfig.seed`.

Every section draws from one shared `numpy.random.Generator` in turn, so the order of the calls in
`generate_world` is part of the output: reordering them changes every world. The features added for
the October ranking policy (mutual follows, media-only posts, new users) draw from their own
streams seeded from the seed, so the frames drawn from the shared one are the same with them."""

from __future__ import annotations

import numpy as np
import polars as pl

from world.config import WorldConfig
from world.population import draw_authors, draw_new_users, draw_users
from world.posts import draw_posts
from world.sessions import draw_sessions
from world.social_graph import draw_follow_graph, draw_muted_keywords, draw_new_user_follows
from world.vocab import topic_names, topic_vocab
from world.world import World


def generate_world(config: WorldConfig) -> World:
    config.validate()
    rng = np.random.default_rng(config.seed)
    names = topic_names(config.n_topics)
    vocab = topic_vocab(config.n_topics)
    authors = draw_authors(config, rng, names)
    users = draw_users(config, rng)
    graph = draw_follow_graph(config, rng, users, authors)
    muted_keywords = draw_muted_keywords(config, rng, users, vocab)
    posts = draw_posts(config, rng, authors, vocab)
    engagements, oracle = draw_sessions(config, rng, users, authors, graph, posts)
    # new users (no history: they are not in the sessions) from their own stream
    new_rng = np.random.default_rng([config.seed, 0x4E3])
    new_users = draw_new_users(config, new_rng)
    assert new_users.created_at_ms is not None
    new_follows, new_counts = draw_new_user_follows(
        config, new_rng, new_users, new_users.created_at_ms, authors
    )
    follows = pl.concat([graph.edges, new_follows]).sort(
        ["created_at_ms", "user_id", "target_user_id", "kind"]
    )
    return World(
        config=config,
        posts=posts.frame,
        engagements=engagements,
        oracle=oracle,
        follows=follows,
        muted_keywords=muted_keywords,
        users=pl.concat([users.frame(), new_users.frame()]),
        authors=authors.frame(graph.follower_count + new_counts),
        topics=names,
        topic_words=vocab,
    )
