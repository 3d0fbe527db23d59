"""The debug (explain) response carries the query's hydrated features: the web page's
"query features" table (foryou.app.ui) and `--json` read them from there."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from foryou.core.user_state import SocialGraph
from home_mixer.clients import HomeMixerClients
from home_mixer.handler import ScoredPostsHandler
from home_mixer.pipeline import ScoredPostsPipeline
from protos import home_mixer_pb2


def test_debug_response_has_the_hydrated_query_features(fakes: SimpleNamespace) -> None:
    w = fakes.small_world()
    w.store.graphs[1] = SocialGraph(
        1,
        following=frozenset({10, 12}),
        blocked=frozenset({20}),
        muted_keywords=frozenset({"football"}),
    )
    clients = HomeMixerClients(thunder=w.thunder, retrieval=w.retrieval, ranking=w.ranker, user_state=w.store)
    handler = ScoredPostsHandler(ScoredPostsPipeline(clients), clients)
    req = home_mixer_pb2.GetDebugScoredPostsRequest(
        query=home_mixer_pb2.GetScoredPostsRequest(viewer_id=1, seen_ids=[7, 5], country_code="DE")
    )
    f = asyncio.run(handler.get_debug_scored_posts(req)).query_features
    assert f["viewer_id"] == "1"
    assert f["user_features_available"] == "True"
    assert f["following"] == "2: 10 12" and f["blocked"] == "1: 20"
    assert f["muted_keywords"] == "football"
    assert f["action_sequence_loaded"] == "True" and f["history_items"] == "1"
    assert f["history_recent_posts"] == "3"  # the fakes' history: one engagement with post 3
    assert f["seen_ids"] == "2: 5 7" and f["country_code"] == "DE"
    assert f["muted"] == "0" and "language_code" not in f  # empty strings are left out


def test_query_features_when_user_state_is_down(fakes: SimpleNamespace) -> None:
    w = fakes.small_world()
    w.store.fail = True
    clients = HomeMixerClients(thunder=w.thunder, retrieval=w.retrieval, ranking=w.ranker, user_state=w.store)
    handler = ScoredPostsHandler(ScoredPostsPipeline(clients), clients)
    req = home_mixer_pb2.GetDebugScoredPostsRequest(query=home_mixer_pb2.GetScoredPostsRequest(viewer_id=1))
    f = asyncio.run(handler.get_debug_scored_posts(req)).query_features
    assert f["user_features_available"] == "False" and f["action_sequence_loaded"] == "False"
    assert f["following"] == "0" and "history_items" in f and f["history_items"] == "0"
