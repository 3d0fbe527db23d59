"""Synthetic world generator: topics, authors, users, a follow graph, posts with snowflake ids and
engagement sessions whose labels are drawn from `engagement_model`. Fully vectorised with numpy;
deterministic from `WorldConfig.seed`.

Every section draws from one shared `numpy.random.Generator` in turn, so the order of the calls in
`generate_world` is part of the output: reordering them changes every world."""

from __future__ import annotations

import numpy as np

from world.config import WorldConfig
from world.population import draw_authors, draw_users
from world.posts import draw_posts
from world.sessions import draw_sessions
from world.social_graph import draw_follow_graph, draw_muted_keywords
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
    return World(
        config=config,
        posts=posts.frame,
        engagements=engagements,
        oracle=oracle,
        follows=graph.edges,
        muted_keywords=muted_keywords,
        users=users.frame(),
        authors=authors.frame(graph.follower_count),
        topics=names,
        topic_words=vocab,
    )
