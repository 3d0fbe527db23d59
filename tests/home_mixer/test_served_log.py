"""The `served` feature log read back from the real broker: one record per served post with the
request id, position, source, both model versions, the ranker's per-action probabilities (equal to
what the debug view shows), the predicted dwell, the weighted and final scores; compact; and the
feed itself is what it was."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import numpy as np
import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition

from foryou.core.kafka import consumer_config
from foryou.core.settings import Settings
from home_mixer.clients import HomeMixerClients
from home_mixer.params import ACTION_HEADS
from home_mixer.service import HomeMixerConfig, HomeMixerService
from home_mixer.side_effects.served_record import served_events
from protos import events_pb2, home_mixer_pb2, home_mixer_pb2_grpc, phoenix_pb2


class VariedRanker:
    """Every head of every post gets its own probability (so a mix-up of heads or posts shows) and a
    predicted dwell; the model version is fixed."""

    async def predict(self, request: phoenix_pb2.PredictRequest) -> phoenix_pb2.PredictResponse:
        out = phoenix_pb2.PredictResponse(model_version="rank-v7")
        for c in request.candidates:
            rng = np.random.default_rng(c.post_id % 100_000)
            out.predictions.add(
                post_id=c.post_id,
                action_probs=rng.uniform(0.0, 0.3, 64).tolist(),
                continuous=[0.0, float(rng.uniform(1, 30))] + [0.0] * 6,
            )
        return out


def read_served(settings: Settings, expect: int, timeout_s: float = 20.0) -> list[events_pb2.ServedEvent]:
    topic = settings.topic(settings.served_topic)
    c = Consumer(consumer_config(settings, "served-log-test"))
    c.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
    out: list[Any] = []
    deadline = time.time() + timeout_s
    while len(out) < expect and time.time() < deadline:
        out += [m for m in c.consume(500, 0.2) if m.error() is None]
    c.close()
    assert all(m.key() == b"1" for m in out)  # key = viewer id
    return [events_pb2.ServedEvent.FromString(m.value()) for m in out]


def serve_debug_and_feed(
    settings: Settings, w: SimpleNamespace
) -> tuple[home_mixer_pb2.GetDebugScoredPostsResponse, home_mixer_pb2.GetScoredPostsResponse]:
    """A debug view and a plain feed for viewer 1 from a real HomeMixerService (VariedRanker)."""

    async def go() -> tuple[
        home_mixer_pb2.GetDebugScoredPostsResponse, home_mixer_pb2.GetScoredPostsResponse
    ]:
        clients = HomeMixerClients(w.thunder, w.retrieval, VariedRanker(), w.store)
        svc = HomeMixerService(settings, clients, HomeMixerConfig())
        await svc.start()
        try:
            async with grpc.aio.insecure_channel(svc.address) as ch:
                stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
                query = home_mixer_pb2.GetScoredPostsRequest(viewer_id=1)
                debug = await stub.GetDebugScoredPosts(
                    home_mixer_pb2.GetDebugScoredPostsRequest(query=query), timeout=5
                )
                feed = await stub.GetScoredPosts(query, timeout=5)
        finally:
            await svc.stop()  # drains the side effects and flushes the producer
        return debug, feed

    return asyncio.run(go())


@pytest.mark.integration
def test_served_records_carry_what_the_ranker_and_retrieval_said(
    settings: Settings, fakes: SimpleNamespace
) -> None:
    # OON posts by distinct authors (50 + i): a mix-up of authors shows in the records
    w = fakes.small_world(oon_author=lambda i: 50 + i)
    debug, feed = serve_debug_and_feed(settings, w)
    selected = sorted((c for c in debug.candidates if c.outcome == "selected"), key=lambda c: c.position)
    assert len(selected) == len(feed.scored_posts) == 20 and not debug.degraded
    records = read_served(settings, 2 * len(selected))
    assert len(records) == 2 * len(selected)

    recs = sorted((r for r in records if r.request_id == debug.request_id), key=lambda r: r.position)
    assert [r.position for r in recs] == list(range(len(selected)))
    assert {r.source for r in recs} == {"ThunderSource", "PhoenixSource"}
    for r, c in zip(recs, selected, strict=True):
        assert (r.viewer_id, r.post_id, r.author_id) == (1, c.post_id, c.author_id)
        assert r.source == c.source and r.in_network == c.in_network
        assert r.model_version == debug.model_version == "rank-v7"
        assert r.retrieval_model_version == ("retr-test" if c.source == "PhoenixSource" else "")
        assert len(r.action_probs) == 64
        heads = {h: v for h, v in c.action_probs.items() if h != "dwell_time"}
        np.testing.assert_allclose(
            [r.action_probs[ACTION_HEADS[h]] for h in heads], list(heads.values()), rtol=1e-6
        )
        assert r.HasField("predicted_dwell_s")
        assert r.predicted_dwell_s == pytest.approx(c.action_probs["dwell_time"], rel=1e-6)
        assert r.weighted_score == pytest.approx(c.weighted_score)
        assert r.score == pytest.approx(c.final_score)
        assert r.experiment_bucket == ""
        assert r.product_surface == events_pb2.PRODUCT_SURFACE_HOME_TIMELINE
        assert r.served_at_ms > 0
        assert r.ByteSize() < 400  # compact: 64 packed float32 + scalars

    # the plain feed: its records follow the response exactly
    frecs = sorted((r for r in records if r.request_id == feed.request_id), key=lambda r: r.position)
    assert [(r.post_id, r.source) for r in frecs] == [(p.post_id, p.source) for p in feed.scored_posts]
    assert [r.score for r in frecs] == pytest.approx([p.score for p in feed.scored_posts])
    # same world, same ranker: the feed equals the debug view's selection
    assert [p.post_id for p in feed.scored_posts] == [c.post_id for c in selected]


@pytest.mark.integration
def test_served_records_replay_with_every_column_filled(
    settings: Settings, fakes: SimpleNamespace, tmp_path: Path
) -> None:
    """What home_mixer wrote, replayed (`foryou replay served`): every ServedEvent field is a column
    (a field added to the proto but not to the replay schema fails here), none is null, and each
    equals what the debug view showed."""
    from foryou.app.replay import replay_topic
    from foryou.app.replay.schemas import SERVED

    debug, _ = serve_debug_and_feed(settings, fakes.small_world(oon_author=lambda i: 50 + i))
    res = replay_topic(settings, "served", 0, None, tmp_path / "served")
    df = pl.read_parquet(res.files)
    assert df.schema == SERVED.schema and set(df.columns) == set(
        events_pb2.ServedEvent.DESCRIPTOR.fields_by_name
    )
    assert df.height == 40 and df.null_count().sum_horizontal().item() == 0
    rows = df.filter(pl.col("request_id") == debug.request_id).sort("position").to_dicts()
    selected = sorted((c for c in debug.candidates if c.outcome == "selected"), key=lambda c: c.position)
    assert [r["post_id"] for r in rows] == [c.post_id for c in selected] and len(rows) == 20
    for r, c in zip(rows, selected, strict=True):
        assert (r["viewer_id"], r["author_id"], r["source"], r["in_network"]) == (
            1,
            c.author_id,
            c.source,
            c.in_network,
        )
        assert r["model_version"] == "rank-v7" and r["served_at_ms"] > 0
        assert r["retrieval_model_version"] == ("retr-test" if c.source == "PhoenixSource" else "")
        heads = {h: v for h, v in c.action_probs.items() if h != "dwell_time"}
        assert len(r["action_probs"]) == 64
        np.testing.assert_allclose(
            [r["action_probs"][ACTION_HEADS[h]] for h in heads], list(heads.values()), rtol=1e-6
        )
        assert r["predicted_dwell_s"] == pytest.approx(c.action_probs["dwell_time"], rel=1e-6)
        assert r["weighted_score"] == pytest.approx(c.weighted_score) and r["score"] == pytest.approx(
            c.final_score
        )
        assert (
            r["experiment_bucket"] == "" and r["product_surface"] == events_pb2.PRODUCT_SURFACE_HOME_TIMELINE
        )
    assert {r["source"] for r in rows} == {"ThunderSource", "PhoenixSource"}


def test_unscored_candidates_have_no_probabilities(fakes: SimpleNamespace) -> None:
    """Recency fallback (ranker down / no history): no probabilities, no dwell, no ranker version;
    a per-head dict leaves the heads it lacks NaN; a NaN score is written as the response shows it."""
    q = fakes.query(request_id="r-1")
    unscored = fakes.cand(1, 10, source="ThunderSource", in_network=True, weighted_score=0.0005, score=0.0005)
    dict_scored = fakes.cand(
        2,
        11,
        source="PhoenixSource",
        retrieval_model_version="retr-9",
        phoenix_scores={"favorite": 0.25, "dwell_time": 3.0},
        weighted_score=float("nan"),
        score=float("nan"),
    )
    a, b = served_events(q, [unscored, dict_scored])
    assert (a.position, b.position) == (0, 1) and a.request_id == b.request_id == "r-1"
    assert list(a.action_probs) == [] and not a.HasField("predicted_dwell_s") and a.model_version == ""
    assert a.retrieval_model_version == "" and b.retrieval_model_version == "retr-9"
    assert b.action_probs[ACTION_HEADS["favorite"]] == pytest.approx(0.25)
    assert np.isnan(b.action_probs[ACTION_HEADS["reply"]]) and b.predicted_dwell_s == 3.0
    assert b.score == 0.0 and b.weighted_score == 0.0
