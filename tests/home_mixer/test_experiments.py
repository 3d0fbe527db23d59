"""Params file and experiments (home_mixer/experiments.py, params_watcher.py): buckets by
hash(user id, salt) are deterministic and match the shares; a file is validated whole; the watcher
reloads a changed file and keeps the old config when the new one is bad; a viewer's bucket sets its
params and ranker version and is recorded in `served` and the debug response; shadow scoring asks
the shadow version and serves nothing of it."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from home_mixer.clients import HomeMixerClients
from home_mixer.experiments import (
    ParamsFileError,
    ServingConfig,
    Shadow,
    bucket_index,
    load_params_file,
    parse_serving_config,
)
from home_mixer.handler import ScoredPostsHandler
from home_mixer.params import DEFAULT_PARAMS
from home_mixer.params_watcher import ParamsFileWatcher
from home_mixer.pipeline import ScoredPostsPipeline
from home_mixer.side_effects.served_record import served_events
from protos import home_mixer_pb2, phoenix_pb2

AB = """
version = "ab-1"
[params]
result_size = 10
[[experiment]]
name = "oon"
salt = "s1"
[[experiment.bucket]]
name = "control"
share = 0.5
[[experiment.bucket]]
name = "zero"
share = 0.5
ranker_version = "ranker-0002"
params = { oon_weight_factor = 0.0 }
"""


def test_bucket_assignment_is_deterministic_and_matches_the_shares() -> None:
    shares = [0.5, 0.3, 0.15]  # 5% of users are in no bucket
    users = range(1, 40_001)
    first = [bucket_index(u, "salt-a", shares) for u in users]
    assert first == [bucket_index(u, "salt-a", shares) for u in users]  # deterministic
    n = len(first)
    for i, s in enumerate(shares):
        assert abs(first.count(i) / n - s) < 0.01, (i, first.count(i) / n)
    assert abs(first.count(None) / n - 0.05) < 0.01
    # another salt re-draws: the buckets are independent of the first experiment's
    other = [bucket_index(u, "salt-b", shares) for u in users]
    both = sum(a == 0 and b == 0 for a, b in zip(first, other, strict=True)) / n
    assert abs(both - 0.25) < 0.01
    assert other != first


def test_assignment_applies_the_bucket(tmp_path: Path) -> None:
    p = tmp_path / "params.toml"
    p.write_text(AB)
    cfg = load_params_file(p)
    assert cfg.version == "ab-1" and cfg.params.result_size == 10
    seen = {}
    for u in range(1, 200):
        a = cfg.assign(u)
        seen[a.bucket] = a
        assert a is cfg.assign(u)  # cached per bucket combination, same answer
    assert set(seen) == {"oon:control", "oon:zero"}
    assert (
        seen["oon:zero"].params.oon_weight_factor == 0.0 and seen["oon:zero"].ranker_version == "ranker-0002"
    )
    assert seen["oon:control"].params.oon_weight_factor == DEFAULT_PARAMS.oon_weight_factor
    assert seen["oon:control"].ranker_version == "" and seen["oon:zero"].params.result_size == 10
    # no version in the file: the content hash names it
    p.write_text(AB.replace('version = "ab-1"', ""))
    assert len(load_params_file(p).version) == 12


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[params]\nno_such_param = 1\n", "unknown param"),
        ("[params]\nresult_size = 1.5\n", "cannot parse"),
        ("[params]\nresult_size = 100\n", "must not exceed"),
        ("colour = 1\n", "unknown key"),
        ("[params\n", "Expected"),  # not TOML
        (AB.replace("share = 0.5\nranker", "share = 0.6\nranker"), "sum to 1.1"),
        (AB.replace('name = "zero"', 'name = "control"'), "duplicate bucket"),
        (
            AB + '\n[[experiment]]\nname = "two"\n[[experiment.bucket]]\nname = "a"\nshare = 1\n'
            "params = { oon_weight_factor = 0.5 }\n",
            "both set oon_weight_factor",
        ),
        (AB.replace("oon_weight_factor = 0.0", "oon_weight_factor = -inf"), "number, bool or string"),
        ("[shadow]\nshare = 0.1\n", "ranker_version is required"),
    ],
)
def test_a_bad_params_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "params.toml"
    p.write_text(text)
    with pytest.raises(ParamsFileError, match=message):
        load_params_file(p)


def _bump(p: Path, text: str) -> None:
    st = p.stat()
    p.write_text(text)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a new mtime, even on coarse clocks


def test_watcher_reloads_a_changed_file_and_keeps_the_old_one_when_bad(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = tmp_path / "params.toml"
    p.write_text('version = "v1"\n[params]\noon_weight_factor = 0.5\n')
    served: list[ServingConfig] = []
    w = ParamsFileWatcher(p, served.append, interval_s=0.01)
    assert w.load_initial().params.oon_weight_factor == 0.5 and w.version == "v1"
    assert w.check() is False  # unchanged: not re-read
    _bump(p, 'version = "v2"\n[params]\noon_weight_factor = 0.25\n')
    assert w.check() is True and served[-1].params.oon_weight_factor == 0.25 and w.version == "v2"
    _bump(p, 'version = "v3"\n[params]\noon_weight_factor = "lots"\n')
    with caplog.at_level(logging.ERROR, logger="home_mixer.params_watcher"):
        assert w.check() is False
    assert len(served) == 2 and w.version == "v2" and w.refused == 1
    assert "still serving version v2" in caplog.text and "oon_weight_factor" in caplog.text
    assert w.check() is False and w.refused == 1  # the same bad file is refused once
    _bump(p, 'version = "v4"\n')
    assert w.check() is True and served[-1].params == DEFAULT_PARAMS and w.version == "v4"


def test_a_bad_file_at_start_up_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "params.toml"
    p.write_text("[params]\nresult_size = -1\n")
    with pytest.raises(ParamsFileError):
        ParamsFileWatcher(p, lambda _c: None).load_initial()


class VersionedRanker:
    """The fakes' ranker that records the requested model version and knows only `known`."""

    def __init__(self, inner: object, known: set[str]) -> None:
        self.inner, self.known, self.versions = inner, known, []

    async def predict(self, request: phoenix_pb2.PredictRequest) -> phoenix_pb2.PredictResponse:
        self.versions.append(request.model_version)
        if request.model_version and request.model_version not in self.known:
            raise RuntimeError(f"FAILED_PRECONDITION unknown version {request.model_version}")
        out = await self.inner.predict(request)  # type: ignore[attr-defined]
        out.model_version = request.model_version or "promoted"
        return out


def _handler(fakes: SimpleNamespace, known: set[str]) -> tuple[ScoredPostsHandler, VersionedRanker]:
    w = fakes.small_world()
    ranker = VersionedRanker(w.ranker, known)
    clients = HomeMixerClients(thunder=w.thunder, retrieval=w.retrieval, ranking=ranker, user_state=w.store)
    return ScoredPostsHandler(ScoredPostsPipeline(clients), clients), ranker


def _viewer_in(cfg: ServingConfig, bucket: str) -> int:
    return next(u for u in range(1, 1000) if cfg.assign(u).bucket == bucket)


def test_the_bucket_sets_params_and_ranker_version_and_is_recorded(fakes: SimpleNamespace) -> None:
    import tomllib

    cfg = parse_serving_config(tomllib.loads(AB))
    handler, ranker = _handler(fakes, {"ranker-0002"})
    handler.set_serving(cfg)
    viewer = _viewer_in(cfg, "oon:zero")
    fakes_world = fakes.small_world()
    # the small world's viewer 1 has the follows and history: give this viewer the same
    handler.clients.user_state.graphs[viewer] = fakes_world.store.graphs[1]
    handler.clients.user_state.sequences[viewer] = fakes_world.store.sequences[1]
    req = home_mixer_pb2.GetDebugScoredPostsRequest(
        query=home_mixer_pb2.GetScoredPostsRequest(viewer_id=viewer)
    )
    resp = asyncio.run(handler.get_debug_scored_posts(req))
    assert resp.experiment_bucket == "oon:zero" and resp.query_features["experiment_bucket"] == "oon:zero"
    assert resp.params["oon_weight_factor"] == "0.0" and resp.params["result_size"] == "10"
    assert ranker.versions == ["ranker-0002"] and resp.model_version == "ranker-0002"
    assert not resp.degraded
    fr = asyncio.run(handler.run(req.query))
    recs = served_events(fr.query, fr.selected)
    assert recs and {r.experiment_bucket for r in recs} == {"oon:zero"}
    assert {r.model_version for r in recs} == {"ranker-0002"}
    # a control viewer: default OON factor, the promoted ranker, its own bucket
    ctl = _viewer_in(cfg, "oon:control")
    resp = asyncio.run(
        handler.get_debug_scored_posts(
            home_mixer_pb2.GetDebugScoredPostsRequest(
                query=home_mixer_pb2.GetScoredPostsRequest(viewer_id=ctl)
            )
        )
    )
    assert resp.experiment_bucket == "oon:control" and resp.params["oon_weight_factor"] == "0.75"


def test_an_unknown_ranker_version_falls_back_visibly(fakes: SimpleNamespace) -> None:
    import tomllib

    cfg = parse_serving_config(tomllib.loads(AB))
    handler, ranker = _handler(fakes, known=set())
    handler.set_serving(cfg)
    viewer = _viewer_in(cfg, "oon:zero")
    w = fakes.small_world()
    handler.clients.user_state.graphs[viewer] = w.store.graphs[1]
    handler.clients.user_state.sequences[viewer] = w.store.sequences[1]
    fr = asyncio.run(handler.run(home_mixer_pb2.GetScoredPostsRequest(viewer_id=viewer)))
    assert ranker.versions == ["ranker-0002", ""]  # refused, then the promoted model
    assert "ranker_version_unavailable" in fr.degraded and fr.query.model_version == "promoted"
    assert fr.selected and all(c.action_probs is not None for c in fr.selected)  # still ranked


def test_shadow_scoring_asks_the_shadow_model_and_serves_nothing_of_it(
    fakes: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    handler, ranker = _handler(fakes, {"ranker-0009"})
    handler.set_serving(ServingConfig(DEFAULT_PARAMS, shadow=Shadow("ranker-0009", 1.0)))

    async def go() -> object:
        fr = await handler.run(home_mixer_pb2.GetScoredPostsRequest(viewer_id=1))
        await handler.pipeline.drain_side_effects(timeout_s=5.0)
        return fr

    with caplog.at_level(logging.INFO, logger="home_mixer.side_effects.shadow_scoring_side_effect"):
        fr = asyncio.run(go())
    assert ranker.versions == ["", "ranker-0009"]  # served by the promoted model, then the shadow
    assert fr.query.model_version == "promoted"  # type: ignore[attr-defined]
    rec = next(r for r in caplog.records if r.getMessage() == "shadow scored")
    assert rec.shadow_version == "ranker-0009" and rec.served_version == "promoted"  # type: ignore[attr-defined]
    assert rec.overlap == 1.0  # type: ignore[attr-defined]  # the fake ranks alike whatever the version
    # a 0% shadow share scores nothing extra
    ranker.versions.clear()
    handler.set_serving(ServingConfig(DEFAULT_PARAMS, shadow=Shadow("ranker-0009", 0.0)))
    asyncio.run(go())
    assert ranker.versions == [""]
