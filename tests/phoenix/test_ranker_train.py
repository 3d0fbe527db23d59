"""Training on a tiny synthetic world, resumable checkpoints, evaluation with oracle + baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from phoenix.ranker.checkpoint import load_model, save_model
from phoenix.ranker.config import RankerConfig, TrainConfig
from phoenix.ranker.evaluate import evaluate_ranker
from phoenix.ranker.model import RankerModel
from phoenix.ranker.testing import random_request
from phoenix.ranker.train import train_ranker


def _cfg(**kw: object) -> TrainConfig:
    base: dict = dict(
        model=RankerConfig.tiny(),
        batch_size=32,
        progress=False,
        num_threads=1,
        eval_every=0,
        checkpoint_every=0,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_training_lowers_loss_and_beats_random(tiny_world: Path, tmp_path: Path) -> None:
    m = train_ranker(tiny_world, tmp_path / "run", _cfg(epochs=3, eval_every=50))
    assert m["final_train_loss_ema"] < 0.6 * m["first_train_loss_ema"]
    ev = m["eval"]["metrics"]
    assert ev["model"]["dwell"]["roc_auc"] > 0.55
    assert ev["model"]["favorite"]["roc_auc"] > 0.53
    # oracle + both baselines evaluated on the same split, gap closure reported
    assert {"oracle", "author_popularity", "matrix_factorization"} <= set(ev)
    assert ev["oracle"]["favorite"]["roc_auc"] > 0.6
    assert np.isfinite(m["eval"]["gap_closure"]["favorite"])
    # the history ablation re-scores the same impressions with empty histories
    assert "favorite" in m["eval"]["without_history"]
    assert 0.0 < m["eval"]["without_history"]["favorite"] < 1.0
    assert m["eval"]["dwell_rmse_s"] > 0 and m["eval"]["dwell_r2"] is not None
    # per-segment AUCs: each family of segments partitions the eval impressions
    seg, n = m["eval"]["segments"], m["eval"]["eval_impressions"]
    assert sum(seg[f"history_{k}"]["impressions"] for k in ("none", "short", "full")) == n
    assert seg["post_seen_in_training"]["impressions"] + seg["post_new"]["impressions"] == n
    assert sum(v["impressions"] for k, v in seg.items() if k.startswith("surface_")) == n
    assert seg["surface_home_timeline"]["impressions"] > 0
    for f in (
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "metrics.json",
        "training_curves.png",
        "eval_auc.png",
    ):
        assert (tmp_path / "run" / f).exists(), f
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["model_version"] == m["model_version"]
    # evaluate_ranker reproduces the model's numbers from the checkpoint alone
    again = evaluate_ranker(tiny_world, tmp_path / "run", baselines=False)
    assert again["metrics"]["model"]["favorite"]["roc_auc"] == pytest.approx(
        ev["model"]["favorite"]["roc_auc"], abs=1e-6
    )


def test_resume_equals_uninterrupted(tiny_world: Path, tmp_path: Path) -> None:
    # extending a finished run (a larger max_steps); the curriculum's split depends on the run's
    # length, so this uses the ranking stage alone (test_ranker_curriculum resumes mid-curriculum)
    straight = tmp_path / "straight"
    train_ranker(tiny_world, straight, _cfg(max_steps=12, exposure_epochs=0.0), evaluate=False)
    resumed = tmp_path / "resumed"
    train_ranker(tiny_world, resumed, _cfg(max_steps=7, exposure_epochs=0.0), evaluate=False)
    assert json.loads((resumed / "train_state.json").read_text())["step"] == 7
    m = train_ranker(tiny_world, resumed, _cfg(max_steps=12, exposure_epochs=0.0), evaluate=False)
    assert m["steps"] == 12
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_checkpoint_roundtrip_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = RankerModel(RankerConfig.tiny(num_layers=1)).eval()
    with torch.no_grad():
        model.action_head.weight.normal_(std=0.5)
    version = save_model(tmp_path, model, step=3)
    loaded, meta = load_model(tmp_path)
    assert meta["model_version"] == version and meta["step"] == 3
    assert loaded.cfg == model.cfg
    assert meta["hash_tables"] == model.cfg.hash_config.to_dict()
    b, _, _ = random_request(model.cfg, [4, 0], 5)
    with torch.inference_mode():
        l1, c1 = model(b)
        l2, c2 = loaded(b)
    assert torch.equal(l1, l2) and torch.equal(c1, c2)


def test_loading_rejects_non_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(ValueError, match="unsupported"):
        load_model(tmp_path)


def test_missing_logs_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        train_ranker(tmp_path / "nope.parquet", tmp_path / "out", _cfg(max_steps=1))
