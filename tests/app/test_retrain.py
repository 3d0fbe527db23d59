"""Retrain → gate → register → promote on a tiny world: the first version is promoted, a better
candidate is promoted, a worse one is registered but not promoted (and the report says why), warm
starts continue from the promoted weights, and a later log directory can be the held-out window."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from foryou.app.retrain import GateRule, gate, gate_rows, reference_weights, retrain
from phoenix.log_dir import ENGAGEMENTS_FILE, POSTS_FILE
from phoenix.ranker.config import RankerConfig, TrainConfig
from phoenix.ranker.train import train_ranker
from phoenix.registry import Registry
from world import WorldConfig, generate_world

BASE = dict(
    model=RankerConfig.tiny(), batch_size=32, progress=False, num_threads=1, eval_every=0, checkpoint_every=0
)
# 3 epochs of the curriculum (~340 steps, ~5 s): clearly better than random on every large action
GOOD = TrainConfig(**BASE, epochs=2.0)
# one step with zero learning rates and no table warm start: the random initial weights
UNTRAINED = TrainConfig(
    **BASE, max_steps=1, lr=0.0, embedding_lr=0.0, warm_start_dim=0, exposure_epochs=0.0, epochs=1.0
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(WorldConfig.tiny(seed=0)).save(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def good_checkpoint(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("good")
    train_ranker(world, out, GOOD, evaluate=False)
    return out


def _metrics(auc: dict[str, float], positives: int = 100, w: float = 0.8) -> dict:
    return {
        "auc": auc,
        "positives": dict.fromkeys(auc, positives),
        "weighted_ndcg": w,
        "weighted_auc": 0.6,
        "weighted_positives": 500,
    }


def test_gate_rule() -> None:
    prom = _metrics({"favorite": 0.65, "reply": 0.60})
    assert gate(_metrics({"favorite": 0.70, "reply": 0.60}), prom)[0]
    ok, reasons = gate(_metrics({"favorite": 0.646, "reply": 0.61}, w=0.8), prom)
    assert ok, reasons  # 0.004 worse: within the default tolerance 0.005
    ok, reasons = gate(_metrics({"favorite": 0.64, "reply": 0.70}, w=0.9), prom)
    assert not ok and len(reasons) == 1 and "favorite ROC-AUC 0.6400 is 0.0100 below" in reasons[0]
    assert gate(_metrics({"favorite": 0.64, "reply": 0.6}), prom, GateRule(0.02))[0]
    ok, reasons = gate(_metrics({"favorite": 0.7, "reply": 0.7}, w=0.79), prom)
    assert not ok and reasons[0].startswith("weighted_ndcg 0.7900 is 0.0100 below")
    assert gate(_metrics({"favorite": 0.7}, w=0.79), prom, GateRule(weighted_tolerance=0.02))[0]
    # an action with few positives is reported, not gated (its AUC is noise)
    rare = _metrics({"favorite": 0.5}, positives=10)
    assert gate(rare, _metrics({"favorite": 0.7}, positives=10))[0]
    assert not gate(rare, _metrics({"favorite": 0.7}, positives=10), GateRule(min_positives=5))[0]
    ok, reasons = gate(rare, None)
    assert ok and "no promoted version" in reasons[0]


def test_gate_needs_evidence_and_gates_the_unserved_ndcg() -> None:
    prom = _metrics({"favorite": 0.65}) | {"weighted_ndcg_neg": 0.7}
    # too few held-out impressions of positive value: the promoted model stays, and we say why
    thin = _metrics({"favorite": 0.9}, w=0.95) | {"weighted_positives": 12, "weighted_ndcg_neg": 0.9}
    ok, reasons = gate(thin, prom)
    assert not ok and reasons == [
        "not enough evidence: 12 held-out impressions of positive value (need ≥ 30); the promoted model stays"
    ]
    assert gate(thin, prom, GateRule(min_weighted_positives=10))[0]
    assert gate(thin, None)[0]  # a first version needs no comparison
    # better on the served impressions, worse against unserved negatives: rejected
    ok, reasons = gate(_metrics({"favorite": 0.7}, w=0.9) | {"weighted_ndcg_neg": 0.6}, prom)
    assert not ok and reasons[0].startswith("weighted_ndcg_neg 0.6000 is 0.1000 below")
    assert gate(_metrics({"favorite": 0.7}) | {"weighted_ndcg_neg": 0.6}, prom, GateRule(also_gated=()))[0]
    ok, reasons = gate(_metrics({"favorite": 0.7}) | {"weighted_ndcg_neg": 0.71}, prom)
    assert ok and any(r.startswith("weighted_ndcg_neg 0.7100 vs promoted 0.7000") for r in reasons)
    # 20-49 positives: gated within one standard error (0.3/√35 ≈ 0.051), a collapsed head fails
    few = _metrics({"favorite": 0.51}, positives=35)
    ok, reasons = gate(_metrics({"favorite": 0.40}, positives=35), few)
    assert not ok and reasons == [
        "favorite ROC-AUC 0.4000 is 0.1100 below the promoted model's 0.5100 (tolerance 0.0507, 35 positives)"
    ]
    assert gate(_metrics({"favorite": 0.47}, positives=35), few)[0]


def _old_style(m: dict) -> dict:
    """`m` as a registry version written before issue 21 stored it: actions by their enum names."""
    enum = {
        "favorite": "SERVER_TWEET_FAV",
        "reply": "SERVER_TWEET_REPLY",
        "dwell": "CLIENT_TWEET_RECAP_DWELLED",
    }
    return m | {k: {enum[a]: v for a, v in m[k].items()} for k in ("auc", "positives")}


@pytest.mark.parametrize(
    ("cand_auc", "ok_expected"),
    [
        ({"favorite": 0.70, "reply": 0.60, "dwell": 0.75}, True),
        ({"favorite": 0.64, "reply": 0.70, "dwell": 0.75}, False),  # favorite 0.01 below
        ({"favorite": 0.70, "reply": 0.60, "dwell": 0.60}, False),  # dwell 0.15 below
    ],
)
def test_old_and_new_metric_keys_gate_identically(cand_auc: dict[str, float], ok_expected: bool) -> None:
    prom = _metrics({"favorite": 0.65, "reply": 0.60, "dwell": 0.75})
    cand = _metrics(cand_auc)
    new = gate(cand, prom)
    assert new[0] is ok_expected
    # either side (or both) stored with enum-style keys: the same verdict and the same reasons,
    # which name every action by its short name
    for c, p in ((_old_style(cand), prom), (cand, _old_style(prom)), (_old_style(cand), _old_style(prom))):
        assert gate(c, p) == new
        rows = gate_rows(c, p, GateRule())
        assert [r.metric for r in rows] == [r.metric for r in gate_rows(cand, prom, GateRule())]
        assert all(r.gated for r in rows if r.metric.endswith("ROC-AUC"))  # matched, not one-sided
    assert not any("SERVER_TWEET" in r or "CLIENT_TWEET" in r for r in new[1])


def _damaged(good: Path, out: Path, how: str) -> Path:
    """The good checkpoint with every tensor's entries shuffled, or its action head negated (the
    model one would get by training on flipped labels: it ranks the worst first)."""
    import torch

    from phoenix.ranker.checkpoint import load_model, save_model

    model, _ = load_model(good)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if how == "shuffled":
                p.copy_(p.flatten()[torch.randperm(p.numel(), generator=g)].view_as(p))
            elif name == "action_head.weight":
                p.neg_()
    save_model(out, model, 1)
    return out


@pytest.mark.parametrize("how", ["shuffled", "flipped"])
def test_a_damaged_candidate_is_not_promoted(
    world: Path, good_checkpoint: Path, tmp_path: Path, how: str
) -> None:
    reg = Registry(tmp_path / "models")
    reg.promote("ranker", reg.register("ranker", good_checkpoint))
    bad = _damaged(good_checkpoint, tmp_path / how, how)
    r = retrain(world, reg, candidate=bad)
    assert r.version == "ranker-0002" and not r.promoted and not r.gate_ok
    assert reg.promoted("ranker") == "ranker-0001"
    c, p = r.candidate_metrics, r.promoted_metrics
    assert c["weighted_ndcg_neg"] < p["weighted_ndcg_neg"] and c["weighted_ndcg"] < p["weighted_ndcg"]
    assert any(x.startswith("weighted_ndcg_neg") and "below the promoted" in x for x in r.reasons)
    assert "training: none, a given candidate" in r.report.read_text()
    # the same checkpoint given as a candidate is scored identically (the negatives are seeded)
    same = retrain(world, reg, candidate=good_checkpoint)
    assert same.candidate_metrics["weighted_ndcg_neg"] == same.promoted_metrics["weighted_ndcg_neg"]
    assert same.gate_ok


def test_reference_weights_are_the_feed_weights() -> None:
    w = reference_weights()
    assert w.actions[1] == 0.5 and w.actions[4] == 5.0 and w.actions[16] == -234.0  # fav, reply, report
    assert 13 not in w.actions and w.dwell_s == 0.004  # VQV needs video durations the log lacks


def test_first_version_then_better_then_worse(world: Path, tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    first = retrain(world, reg, config=UNTRAINED)
    assert first.version == "ranker-0001" and first.promoted and first.parent is None
    assert "no promoted version" in first.reasons[0]

    better = retrain(world, reg, config=GOOD, warm_start=False)
    assert better.version == "ranker-0002" and better.parent == "ranker-0001"
    assert better.promoted and better.gate_ok and reg.promoted("ranker") == "ranker-0002"
    c, p = better.candidate_metrics, better.promoted_metrics
    assert c["weighted_ndcg"] > p["weighted_ndcg"] and c["auc"]["favorite"] > 0.55
    assert c["eval_impressions"] == p["eval_impressions"] > 0  # the same held-out window

    worse = retrain(world, reg, config=UNTRAINED, warm_start=False)
    assert worse.version == "ranker-0003" and not worse.promoted and not worse.gate_ok
    assert reg.promoted("ranker") == "ranker-0002"
    assert any("favorite ROC-AUC" in r and "below the promoted" in r for r in worse.reasons)
    assert any(r.startswith("weighted_ndcg") for r in worse.reasons)
    report = worse.report.read_text()
    assert worse.report == reg.path("ranker-0003") / "report.md"
    assert "NOT promoted" in report and "## Gate: FAILED" in report and "**FAIL**" in report
    assert "| favorite ROC-AUC |" in report and "ranker-0002" in report
    assert (reg.path("ranker-0003") / "comparison.png").stat().st_size > 0
    assert "## Gate: passed" in better.report.read_text()
    assert (reg.path("ranker-0002") / "training_curves.png").exists()

    m = reg.show("ranker-0003")
    assert m["parent"] == "ranker-0002" and m["metrics"]["auc"] == worse.candidate_metrics["auc"]
    assert m["extra"]["gate"]["ok"] is False and m["extra"]["gate"]["against"] == "ranker-0002"
    w = m["data_window"]
    assert w["train_impressions"] + w["eval_impressions"] == 15_000
    assert w["train_end_ms"] < w["eval_start_ms"] and w["eval_fraction"] == 0.15
    assert [v["version"] for v in reg.list("ranker")] == ["ranker-0001", "ranker-0002", "ranker-0003"]
    assert reg.rollback("ranker") == "ranker-0001"
    assert not any((tmp_path / "models" / ".work").iterdir())  # training dirs removed


def test_dry_run_registers_without_promoting(world: Path, tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    r = retrain(world, reg, config=UNTRAINED, promote=False)
    assert r.gate_ok and not r.promoted and reg.promoted("ranker") is None
    assert r.reasons[-1] == "gate passed; not promoted (promote=False)"


def test_warm_start_continues_from_the_promoted_weights(
    world: Path, good_checkpoint: Path, tmp_path: Path
) -> None:
    reg = Registry(tmp_path / "models")
    reg.promote("ranker", reg.register("ranker", good_checkpoint))
    # zero learning rates: a warm-started candidate is the promoted model, scored identically
    warm = retrain(world, reg, config=dataclasses.replace(UNTRAINED, warm_start_dim=16))
    assert warm.warm_started_from == "ranker-0001" and warm.parent == "ranker-0001"
    assert warm.candidate_metrics["auc"] == warm.promoted_metrics["auc"]
    assert warm.candidate_metrics["weighted_ndcg"] == warm.promoted_metrics["weighted_ndcg"]
    assert warm.promoted  # not worse
    # another architecture cannot take the weights: trained from scratch (and worse, not promoted)
    other = dataclasses.replace(UNTRAINED, model=RankerConfig.tiny(emb_size=48))
    scratch = retrain(world, reg, config=other)
    assert scratch.warm_started_from is None and not scratch.promoted
    assert "warm start: none (from scratch)" in scratch.report.read_text()


def _split_log(world: Path, out: Path, fraction: float) -> tuple[Path, Path, int]:
    """The world's log cut by impression time into an earlier and a later log directory."""
    log = pl.read_parquet(world / ENGAGEMENTS_FILE)
    first = log.group_by("user_id", "post_id").agg(pl.col("timestamp_ms").min().alias("t0"))
    cut = float(np.quantile(first["t0"].to_numpy(), 1 - fraction))
    log = log.join(first, on=["user_id", "post_id"])
    early, late = out / "early", out / "late"
    for d, part in ((early, log.filter(pl.col("t0") < cut)), (late, log.filter(pl.col("t0") >= cut))):
        d.mkdir(parents=True)
        part.drop("t0").write_parquet(d / ENGAGEMENTS_FILE)
        pl.read_parquet(world / POSTS_FILE).write_parquet(d / POSTS_FILE)
    n_late = log.filter(pl.col("t0") >= cut).select("user_id", "post_id").unique().height
    return early, late, n_late


def test_eval_logs_are_the_held_out_window(world: Path, good_checkpoint: Path, tmp_path: Path) -> None:
    early, late, n_late = _split_log(world, tmp_path / "logs", 0.2)
    reg = Registry(tmp_path / "models")
    reg.promote("ranker", reg.register("ranker", good_checkpoint))
    r = retrain(early, reg, eval_logs=late, config=UNTRAINED, warm_start=False)
    assert r.data_window["eval_logs"] == str(late.resolve()) and r.data_window["eval_fraction"] is None
    assert r.candidate_metrics["eval_impressions"] == r.promoted_metrics["eval_impressions"] == n_late
    assert r.data_window["train_impressions"] == 15_000 - n_late
    assert reg.show(r.version)["extra"]["train"]["config"]["eval_fraction"] == 0.0  # trained on all of it
    with pytest.raises(ValueError, match="must be later"):
        retrain(late, reg, eval_logs=early, config=UNTRAINED)


def test_retrain_rejects_other_kinds(world: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind='ranker'"):
        retrain(world, tmp_path / "models", kind="retrieval")
