"""The training loop's commands as a user runs them: `foryou replay` on the real broker, `foryou
dataset build`, `foryou model list|show|promote|rollback`, `foryou retrain` (exit codes), and
`foryou serve phoenix --registry` following promotions. Errors are one line and exit 2."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from foryou.app.cli import app
from foryou.app.cli.common import parse_duration_ms, parse_time_ms
from foryou.core.kafka import make_producer
from foryou.core.net import free_port
from foryou.core.settings import Settings
from phoenix.ranker.checkpoint import save_model
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.model import RankerModel
from phoenix.registry import Registry
from protos import events_pb2 as ev
from protos import phoenix_pb2, phoenix_pb2_grpc

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # rich wraps at the terminal width: one error line must stay one line


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    res = runner.invoke(app, list(args), env={**WIDE, **(env or {})})
    return res.exit_code, res.output


def _one_line_error(code: int, out: str, needle: str) -> None:
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], out


# --- time and duration flags ---


def test_time_and_duration_flags() -> None:
    now = 1_700_000_000_000
    assert parse_time_ms("1003", now) == 1003  # epoch ms, what the flags always took
    assert parse_time_ms("now", now) == now
    assert parse_time_ms("24h", now) == parse_time_ms("24h ago", now) == parse_time_ms("-24h", now)
    assert parse_time_ms("24h", now) == now - 86_400_000
    assert parse_time_ms("1970-01-01T00:00:01.003Z", now) == 1003
    assert parse_time_ms("1970-01-01 00:00:02", now) == 2000  # no zone: UTC, like Kafka timestamps
    assert parse_time_ms("1970-01-01T01:00:00+01:00", now) == 0
    assert parse_duration_ms("30m") == 1_800_000 and parse_duration_ms("1500") == 1500
    assert parse_duration_ms("1.5h") == 5_400_000
    for bad in ("yesterday", "24x", ""):
        with pytest.raises(ValueError, match="cannot read"):
            parse_time_ms(bad, now)


# --- model registry ---


def _fake_checkpoint(d: Path, tag: str) -> Path:
    """The registry reads only config.json (format, model_version) and copies the files."""
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"format": "phoenix-ranker/1", "model_version": f"mv-{tag}"}))
    (d / "model.safetensors").write_bytes(tag.encode() * 100)
    return d


def test_model_list_show_promote_rollback(tmp_path: Path) -> None:
    root = tmp_path / "models"
    reg = Registry(root)
    v1 = reg.register("ranker", _fake_checkpoint(tmp_path / "a", "a"), metrics={"weighted_ndcg": 0.8})
    v2 = reg.register("ranker", _fake_checkpoint(tmp_path / "b", "b"), parent=v1)
    m = ["--models", str(root)]

    code, out = _invoke("model", "list", "--kind", "ranker", *m)
    assert code == 0 and v1 in out and v2 in out and "mv-a" in out and "0.8000" in out, out
    assert not [line for line in out.splitlines() if "mv-" in line and "*" in line]  # none promoted

    code, out = _invoke("model", "promote", v1, *m)
    assert code == 0 and f"promoted {v1}" in out and reg.promoted("ranker") == v1, out
    code, out = _invoke("model", "promote", v2, *m)
    assert code == 0 and f"was {v1}" in out and reg.promoted("ranker") == v2, out
    code, out = _invoke("model", "promote", v2, *m)
    assert code == 0 and "already" in out, out
    code, out = _invoke("model", "list", *m)  # --kind defaults to ranker
    assert code == 0 and f"{v2} *" in out and f"{v1} *" not in out, out

    code, out = _invoke("model", "show", v2, *m, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["version"] == v2 and shown["parent"] == v1 and shown["promoted"] is True
    code, out = _invoke("model", "show", v1, *m)
    assert code == 0 and "mv-a" in out and "weighted_ndcg" in out, out

    code, out = _invoke("model", "rollback", "--kind", "ranker", *m)
    assert code == 0 and f"rolled back ranker to {v1}" in out and reg.promoted("ranker") == v1, out
    _one_line_error(*_invoke("model", "rollback", *m), "no earlier promotion")
    assert [h["action"] for h in reg.history("ranker")] == ["promote", "promote", "rollback"]

    _one_line_error(*_invoke("model", "show", "ranker-0009", *m), "no version ranker-0009")
    _one_line_error(*_invoke("model", "promote", "ranker-0009", *m), "no version ranker-0009")
    _one_line_error(*_invoke("model", "promote", "latest", *m), "not a registry version")
    _one_line_error(*_invoke("model", "list", "--kind", "bogus", *m), "unknown model kind")

    # --models defaults to <data dir>/models
    code, out = _invoke("--data-dir", str(tmp_path), "model", "list")
    assert code == 0 and v2 in out, out
    code, out = _invoke("model", "list", "--json", env={"FORYOU_MODEL_LIST_MODELS": str(root)})
    assert code == 0 and [v["version"] for v in json.loads(out)] == [v1, v2]


def test_model_show_names_actions_by_their_short_names(tmp_path: Path) -> None:
    # a version registered before issue 21: its metrics keyed by the proto enum names
    root = tmp_path / "models"
    old = {
        "weighted_ndcg": 0.8,
        "auc": {"SERVER_TWEET_FAV": 0.61, "CLIENT_TWEET_RECAP_DWELLED": 0.7},
        "positives": {"SERVER_TWEET_FAV": 120, "CLIENT_TWEET_RECAP_DWELLED": 900},
    }
    v1 = Registry(root).register("ranker", _fake_checkpoint(tmp_path / "a", "a"), metrics=old)
    code, out = _invoke("model", "show", v1, "--models", str(root), "--json")
    assert code == 0, out
    shown = json.loads(out)["metrics"]
    assert shown["auc"] == {"favorite": 0.61, "dwell": 0.7}
    assert shown["positives"] == {"favorite": 120, "dwell": 900} and shown["weighted_ndcg"] == 0.8
    code, out = _invoke("model", "show", v1, "--models", str(root))
    assert code == 0 and "auc.favorite" in out and "SERVER_TWEET" not in out and "CLIENT_TWEET" not in out, (
        out
    )


# --- retrain ---


def _fake_result(tmp_path: Path, promoted: bool, gate_ok: bool) -> object:
    from foryou.app.retrain import RetrainResult

    return RetrainResult(
        version="ranker-0002",
        promoted=promoted,
        gate_ok=gate_ok,
        reasons=["SERVER_TWEET_FAV ROC-AUC 0.6 is 0.1 below"] if not gate_ok else ["ok"],
        parent="ranker-0001",
        warm_started_from=None,
        candidate_metrics={},
        promoted_metrics=None,
        data_window={},
        report=tmp_path / "report.md",
    )


@pytest.mark.parametrize(
    ("promoted", "gate_ok", "dry_run", "code"),
    [(True, True, False, 0), (False, False, False, 3), (False, True, False, 4), (False, False, True, 0)],
)
def test_retrain_exit_codes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, promoted: bool, gate_ok: bool, dry_run: bool, code: int
) -> None:
    import foryou.app.retrain as retrain_mod

    seen: dict[str, object] = {}

    def fake(logs: str, registry: Registry, **kw: object) -> object:
        seen.update(kw, logs=logs, root=registry.root)
        return _fake_result(tmp_path, promoted, gate_ok)

    monkeypatch.setattr(retrain_mod, "retrain", fake)
    args = ["retrain", "--logs", "L", "--models", str(tmp_path / "m"), "--auc-tolerance", "0.01"]
    got, out = _invoke(*args, *(["--dry-run"] if dry_run else []), "--no-warm-start")
    assert got == code, out
    assert "ranker-0002" in out and "report.md" in out
    assert seen["promote"] is (not dry_run) and seen["warm_start"] is False and seen["config"] is None
    assert seen["rule"].auc_tolerance == 0.01 and seen["root"] == tmp_path / "m"  # type: ignore[attr-defined]


def test_retrain_bad_input_is_one_line(tmp_path: Path) -> None:
    m = ["--models", str(tmp_path / "m")]
    _one_line_error(*_invoke("retrain", "--logs", str(tmp_path / "none"), *m, "--tiny"), "none")
    _one_line_error(*_invoke("retrain", "--logs", "x", *m, "--tiny", "--small"), "exclusive")
    _one_line_error(*_invoke("retrain", "--logs", "x", *m, "--weighted-metric", "mrr"), "weighted_metric")


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from world import WorldConfig, generate_world

    return generate_world(WorldConfig.tiny(seed=0)).save(tmp_path_factory.mktemp("world"))


def test_retrain_on_a_tiny_world(tiny_world: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    args = ["retrain", "--logs", str(tiny_world), "--models", str(root), "--tiny", "--json"]
    code, out = _invoke(*args, "--max-steps", "4", "--threads", "1")
    assert code == 0, out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["version"] == "ranker-0001" and summary["promoted"] is True
    assert Registry(root).promoted("ranker") == "ranker-0001"
    assert Path(summary["report"]).exists()
    code, out = _invoke("model", "list", "--models", str(root))
    assert code == 0 and "ranker-0001 *" in out and "passed" in out, out


# --- dataset build ---


def test_dataset_build_joins_served_with_engagements(tmp_path: Path) -> None:
    pl.DataFrame(
        {
            "viewer_id": [1, 1, 2],
            "post_id": [10, 11, 10],
            "author_id": [5, 6, 5],
            "served_at_ms": [0, 0, 60_000],
        }
    ).write_parquet(tmp_path / "served.parquet")
    late = 31 * 60_000  # past the 30-minute window of the impression of post 11
    pl.DataFrame(
        {
            "user_id": [1, 1, 2, 3],
            "post_id": [10, 11, 10, 99],
            "author_id": [5, 6, 5, 7],
            "action": [ev.SERVER_TWEET_FAV, ev.SERVER_TWEET_FAV, ev.SERVER_TWEET_REPLY, ev.SERVER_TWEET_FAV],
            "timestamp_ms": [500, late, 60_500, 100],
            "product_surface": [0, 0, 0, 0],
            "dwell_ms": [0, 0, 0, 0],
        }
    ).write_parquet(tmp_path / "eng.parquet")
    base = ["dataset", "build", "--served", str(tmp_path / "served.parquet")]
    base += ["--engagements", str(tmp_path / "eng.parquet")]
    code, out = _invoke(*base, "--out", str(tmp_path / "log.parquet"), "--json")
    assert code == 0, out
    s = json.loads(out)
    assert (s["impressions"], s["positives"], s["unattributed"], s["rows"]) == (3, 2, 2, 5)
    log = pl.read_parquet(tmp_path / "log.parquet")
    assert log.height == 5 and (log["action"] == ev.IMPRESSION).sum() == 3
    code, out = _invoke(*base, "--out", str(tmp_path / "log1h.parquet"), "--attribution-window", "1h")
    assert code == 0 and pl.read_parquet(tmp_path / "log1h.parquet").height == 6, out
    assert "positives" in out
    _one_line_error(*_invoke(*base, "--out", "x.parquet", "--attribution-window", "soon"), "duration")
    _one_line_error(
        *_invoke("dataset", "build", "--served", str(tmp_path / "nope"), "--engagements", "e", "--out", "o"),
        "nope",
    )


# --- replay on the real broker ---


def _publish(settings: Settings, items: list[tuple[int, int, int]]) -> None:
    """(partition, Kafka timestamp, post id) engagement events."""
    producer = make_producer(settings)
    for partition, ts, post in items:
        value = ev.EngagementEvent(
            user_id=post % 7 + 1, post_id=post, author_id=9, action=ev.SERVER_TWEET_FAV, timestamp_ms=ts
        ).SerializeToString()
        producer.produce(settings.topic("engagements"), value=value, partition=partition, timestamp=ts)
    assert producer.flush(10) == 0


@pytest.mark.integration
def test_replay_writes_the_window(settings: Settings, tmp_path: Path) -> None:
    _publish(settings, [(p, ts, p * 10_000 + ts) for p in (0, 1) for ts in range(1000, 1010)])
    env = {"FORYOU_TOPIC_PREFIX": settings.topic_prefix}
    root = ["--kafka-bootstrap", settings.kafka_bootstrap, "replay", "engagements"]
    out = tmp_path / "eng"
    # since as ISO-8601, until as epoch ms: the window [1003, 1007)
    args = [*root, "--out", str(out), "--since", "1970-01-01T00:00:01.003Z", "--until", "1007"]
    code, text = _invoke(*args, "--json", "--merge", str(tmp_path / "log.parquet"), env=env)
    assert code == 0, text
    s = json.loads(text)
    assert (s["messages"], s["rows"], s["malformed"], s["since_ms"], s["until_ms"]) == (8, 8, 0, 1003, 1007)
    assert s["kafka_topic"] == settings.topic("engagements") and s["merged_rows"] == 8
    assert {p["window_end"] for p in s["partitions"].values()} == {True}
    posts = sorted(pl.read_parquet(s["files"])["post_id"].to_list())
    assert posts == [p * 10_000 + ts for p in (0, 1) for ts in range(1003, 1007)]
    # the human summary; a rerun on the same directory adds nothing
    code, text = _invoke(*args, env=env)
    assert code == 0 and "8 in the window (0 rows added by this run)" in " ".join(text.split()), text
    assert "per partition" in text

    _one_line_error(
        *_invoke(*root, "--out", str(tmp_path / "x"), "--since", "2000", "--until", "1000"), "empty"
    )
    _one_line_error(*_invoke(*root, "--out", str(tmp_path / "x"), "--since", "tomorrow"), "cannot read")
    _one_line_error(*_invoke(*root, "--out", str(out), "--since", "1000", env=env), "another directory")
    _one_line_error(*_invoke(*root, "--out", str(tmp_path / "log.parquet")), "--merge")
    _one_line_error(*_invoke("replay", "clicks", "--out", str(tmp_path / "x")), "unknown topic")


def test_replay_unreachable_kafka_is_one_line(tmp_path: Path) -> None:
    args = ["--kafka-bootstrap", f"127.0.0.1:{free_port()}", "replay", "served", "--out", str(tmp_path / "s")]
    _one_line_error(*_invoke(*args, "--connect-timeout", "0.5"), "cannot reach Kafka")


# --- serve phoenix --registry ---


def _served_version(address: str) -> str:
    req = phoenix_pb2.PredictRequest(
        user_id=7, candidates=[phoenix_pb2.RankCandidate(post_id=p, author_id=4) for p in (21, 22)]
    )
    with grpc.insecure_channel(address) as ch:
        return phoenix_pb2_grpc.RankingServiceStub(ch).Predict(req, timeout=10).model_version


def test_serve_phoenix_needs_a_promoted_ranker(tmp_path: Path) -> None:
    _one_line_error(
        *_invoke("serve", "phoenix", "--registry", str(tmp_path / "models")), "no promoted ranker"
    )
    _one_line_error(*_invoke("serve", "phoenix"), "exactly one of")


def test_serve_phoenix_follows_the_registry(
    tmp_path: Path, serve_phoenix: Callable[..., tuple[subprocess.Popen[str], str]]
) -> None:
    root = tmp_path / "models"
    reg = Registry(root)
    mvs, versions = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        ckpt = tmp_path / f"ckpt{seed}"
        mvs.append(save_model(ckpt, RankerModel(RankerConfig.tiny()), step=seed + 1))
        versions.append(reg.register("ranker", ckpt))
    reg.promote("ranker", versions[0])
    proc, address = serve_phoenix("--registry", str(root), "--registry-poll-s", "0.2")
    assert _served_version(address) == mvs[0]
    code, out = _invoke("model", "promote", versions[1], "--models", str(root))
    assert code == 0, out
    end = time.monotonic() + 30
    while _served_version(address) != mvs[1]:
        assert time.monotonic() < end, "the follower did not load the promoted version"
        time.sleep(0.2)
    code, out = _invoke("model", "rollback", "--models", str(root))
    assert code == 0, out
    while _served_version(address) != mvs[0]:
        assert time.monotonic() < end, "the follower did not follow the rollback"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def _retrieved_version(address: str) -> str | None:
    """The retrieval model version a Retrieve answer names; None while the service is not up."""
    with grpc.insecure_channel(address) as ch:
        try:
            resp = phoenix_pb2_grpc.RetrievalServiceStub(ch).Retrieve(
                phoenix_pb2.RetrieveRequest(user_id=7, top_k=5), timeout=5
            )
        except grpc.RpcError:
            return None
    return resp.model_version


@pytest.mark.integration
def test_serve_phoenix_follows_the_registrys_retrieval_model(settings: Settings, tmp_path: Path) -> None:
    """Retrieval versions enter the registry with `foryou model register`; `serve phoenix --registry`
    serves the promoted one and follows promotions and rollbacks, so the model_version every
    Retrieve answer (and hence every served record) names is the promoted one."""
    import os
    import sys

    from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, save_two_tower

    root = tmp_path / "models"
    torch.manual_seed(0)
    save_model(tmp_path / "ranker", RankerModel(RankerConfig.tiny()), step=1)
    Registry(root).promote("ranker", Registry(root).register("ranker", tmp_path / "ranker"))
    mvs = []
    for step in (1, 2):
        mvs.append(save_two_tower(tmp_path / f"r{step}", TwoTowerModel(TwoTowerConfig.tiny()), step=step))
    code, out = _invoke("model", "register", str(tmp_path / "r1"), "--models", str(root), "--promote")
    assert code == 0 and "registered retrieval-0001 and promoted it" in out, out
    code, out = _invoke("model", "register", str(tmp_path / "r2"), "--models", str(root))
    assert code == 0 and "registered retrieval-0002 (retrieval)" in out, out
    _one_line_error(
        *_invoke("model", "register", str(tmp_path), "--models", str(root)), "not a ranker or retrieval"
    )

    retrieval = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORYOU_")}
    env |= {
        "FORYOU_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FORYOU_REDIS_URL": settings.redis_url,
        "FORYOU_TOPIC_PREFIX": settings.topic_prefix,
        "FORYOU_REDIS_PREFIX": settings.redis_prefix,
        "FORYOU_DATA_DIR": str(tmp_path / "data"),
    }
    args = ["serve", "phoenix", "--registry", str(root), "--registry-poll-s", "0.2"]
    args += ["--ranker-address", f"127.0.0.1:{free_port()}", "--retrieval-address", retrieval]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from foryou.app.cli import app; app()", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + 90

        def wait_for(mv: str) -> None:
            while _retrieved_version(retrieval) != mv:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
                assert time.monotonic() < end, f"retrieval does not serve {mv}"
                time.sleep(0.2)

        wait_for(mvs[0])
        assert _invoke("model", "promote", "retrieval-0002", "--models", str(root))[0] == 0
        wait_for(mvs[1])
        assert _invoke("model", "rollback", "--kind", "retrieval", "--models", str(root))[0] == 0
        wait_for(mvs[0])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.integration
def test_serve_all_follows_the_registry(settings: Settings, tmp_path: Path) -> None:
    """`foryou serve all --registry`: the whole stack in one process serves the promoted ranker and
    follows a promotion (the same follower as `serve phoenix --registry`)."""
    import os
    import sys

    root = tmp_path / "models"
    reg = Registry(root)
    mvs, versions = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        mvs.append(save_model(tmp_path / f"c{seed}", RankerModel(RankerConfig.tiny()), step=seed + 1))
        versions.append(reg.register("ranker", tmp_path / f"c{seed}"))
    reg.promote("ranker", versions[0])
    _one_line_error(*_invoke("serve", "all", "--registry", str(tmp_path / "empty")), "no promoted ranker")
    _one_line_error(*_invoke("serve", "all"), "exactly one of")

    env = {k: v for k, v in os.environ.items() if not k.startswith("FORYOU_")}
    env |= {
        "FORYOU_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FORYOU_REDIS_URL": settings.redis_url,
        "FORYOU_TOPIC_PREFIX": settings.topic_prefix,
        "FORYOU_REDIS_PREFIX": settings.redis_prefix,
        "FORYOU_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "400",
    }
    args = ["serve", "all", "--registry", str(root), "--registry-poll-s", "0.2"]
    args += ["--home-mixer-address", f"127.0.0.1:{free_port()}"]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from foryou.app.cli import app; app()", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ranker = ""
        for line in proc.stdout:  # "serving: thunder=… ranker=… home_mixer=…" once it serves
            if line.startswith("serving:"):
                ranker = dict(kv.split("=", 1) for kv in line.split()[1:])["ranker"]
                break
        assert ranker, "serve all ended before serving"
        assert _served_version(ranker) == mvs[0]
        assert _invoke("model", "promote", versions[1], "--models", str(root))[0] == 0
        end = time.monotonic() + 60
        while _served_version(ranker) != mvs[1]:
            assert time.monotonic() < end, "serve all did not load the promoted version"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
