"""foryou/core/admission.py and phoenix/request_limits.py without servers: the cost estimate, the
admission decision against the backlog and its calibration, reload paths confined to a root,
one-line checkpoint errors, the size-guarded service registration."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from foryou.core.admission import Backlog, LinearCost, ShedError
from phoenix.request_limits import (
    CheckpointLoadError,
    OversizedRequest,
    load_checkpoint,
    models_root,
    resolve_reload_path,
    size_guarded_adder,
)
from protos import phoenix_pb2


def test_linear_cost_learns_from_measurements() -> None:
    c = LinearCost(1e-5, 100, 0.5, "test", "a")
    assert c.estimate(900) == pytest.approx(0.01)
    c.observe(0.1, 900)  # the first measurement replaces the configured guess
    assert c.estimate(900) == pytest.approx(0.1)
    c.observe(0.2, 900)  # later ones move the average
    assert c.estimate(900) == pytest.approx(0.15)
    c.observe_at_least(0.05, 900)  # a cut-short request below the estimate teaches nothing
    assert c.estimate(900) == pytest.approx(0.15)
    c.observe_at_least(0.35, 900)
    assert c.estimate(900) == pytest.approx(0.25)


def test_backlog_sheds_what_cannot_finish_before_the_deadline() -> None:
    b = Backlog("test", parallelism=1, slack=0.0, margin_s=0.0)
    now = time.monotonic()
    t1 = b.admit(0.3, 0.3, now + 10, 1.0)
    t2 = b.admit(0.3, 0.3, now + 10, 1.0)
    assert b.ahead_s() == pytest.approx(0.6, abs=0.01)
    with pytest.raises(ShedError, match="600 ms of work ahead, 300 ms its own"):
        b.admit(0.3, 0.3, time.monotonic() + 0.85, 1.0)
    b.admit(0.3, 0.3, time.monotonic() + 0.95, 1.0).start()  # fits: 0.9 s needed
    t1.start()  # running work shrinks as it runs; finished work counts no more
    t1.finish()
    assert b.ahead_s() == pytest.approx(0.6, abs=0.01)
    b.finish(t2)
    assert len(b) == 2
    # without a deadline: refused when more than max_wait_s of work is queued
    with pytest.raises(ShedError, match="without a deadline"):
        b.admit(0.1, 0.1, None, 0.2)
    b.admit(0.1, 0.1, None, 1.0)


def test_backlog_parallelism_and_calibration() -> None:
    b = Backlog("test", parallelism=2, slack=0.0, margin_s=0.0, alpha=0.5)
    for _ in range(4):
        b.admit(0.2, 0.2, None, 10.0)
    assert b.ahead_s() == pytest.approx(0.4, abs=0.01)  # 0.8 s of work on 2 workers
    assert b.needed_s(0.4, 0.2) == pytest.approx(0.6)
    # an accepted request predicted to wait 0.4 s that waited 0.8 s: the work ahead of later
    # requests counts double
    t = b.admit(0.2, 0.2, None, 10.0)
    assert t.predicted_wait_s == pytest.approx(0.4, abs=0.01)
    t.started_at = t.accepted_at + 2 * t.predicted_wait_s
    b.finish(t, completed=True)
    assert b.correction == pytest.approx(2.0)
    assert b.needed_s(0.4, 0.2) == pytest.approx(1.0)
    # a faster-than-predicted wait never makes the estimates more optimistic than measured costs
    b2 = Backlog("test", alpha=1.0)
    t = b2.admit(0.2, 0.2, None, 10.0)
    t.predicted_wait_s, t.started_at = 0.5, t.accepted_at + 0.1
    b2.finish(t, completed=True)
    assert b2.correction == 1.0


def test_reload_paths_stay_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link")
    r = models_root("", root / "a")  # default: the start checkpoint's directory
    assert r == root.resolve()
    assert resolve_reload_path("a", r) == (root / "a").resolve()
    assert resolve_reload_path(root / "a", r) == (root / "a").resolve()
    assert resolve_reload_path("b/../a", r) == (root / "a").resolve()
    for bad in ("../outside", root / ".." / "outside", tmp_path / "outside", "link", "/", "/etc/passwd"):
        with pytest.raises(PermissionError, match="outside the models root"):
            resolve_reload_path(bad, r)
    assert models_root(str(tmp_path / "outside"), root / "a") == (tmp_path / "outside").resolve()
    with pytest.raises(PermissionError, match="no models root"):
        resolve_reload_path("a", models_root("", None))


def test_unloadable_checkpoint_is_one_line(tmp_path: Path) -> None:
    def boom(path: Path) -> Any:
        raise RuntimeError("Error(s) in loading state_dict:\n\tsize mismatch for x\n\tmore lines")

    with pytest.raises(CheckpointLoadError) as e:
        load_checkpoint(boom, tmp_path, "ranker")
    assert "\n" not in str(e.value) and "RuntimeError: Error(s) in loading state_dict:" in str(e.value)

    def missing(path: Path) -> Any:
        raise FileNotFoundError(f"{path}: no config.json")

    with pytest.raises(FileNotFoundError):
        load_checkpoint(missing, tmp_path, "ranker")


class _Server:
    def __init__(self) -> None:
        self.generic: list[Any] = []
        self.registered: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic += handlers

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        self.registered = handlers


def test_size_guarded_registration_covers_every_method() -> None:
    svc = phoenix_pb2.DESCRIPTOR.services_by_name["RankingService"]

    class Servicer:
        def Predict(self, request: Any, context: Any) -> Any:  # noqa: N802
            return request

        ReloadModel = Predict  # noqa: N815

    server = _Server()
    size_guarded_adder(svc, {"Predict": 100})(Servicer(), server)
    assert set(server.registered) == {m.name for m in svc.methods}
    parse = server.registered["Predict"].request_deserializer
    small = phoenix_pb2.PredictRequest(user_id=3).SerializeToString()
    assert parse(small) == phoenix_pb2.PredictRequest(user_id=3)
    assert parse(b"\x08\x01" * 60) == OversizedRequest(120, 100)  # never parsed
    reload_parse = server.registered["ReloadModel"].request_deserializer
    big = phoenix_pb2.ReloadModelRequest(path="x" * 500)
    assert reload_parse(big.SerializeToString()) == big  # no limit on this method
