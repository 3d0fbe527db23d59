"""Retrieval training: early stopping on the held-out metric keeps the best epoch; a failed run
leaves no output folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

import phoenix.retrieval.train as rt
from phoenix.retrieval.model import load_two_tower
from phoenix.retrieval.train import RetrievalTrainConfig, train_retrieval


@pytest.fixture(scope="module")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 users x 12 impressions of 40 posts (a favorite on every second), in global time order by
    position: the newest 30% is every user's last items. The corpus (40 posts) is smaller than
    100, so held-out recall@100 is 1.0 after every epoch: it can never improve."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(1, 9):
        for i, p in enumerate(rng.choice(np.arange(1, 41), 12, replace=False).tolist()):
            t = 1_000_000 + 10_000 * i + u
            rows.append((u, p, 100 + p % 7, "impression", t))
            if i % 2 == 0:
                rows.append((u, p, 100 + p % 7, "favorite", t + 1))
    u, p, a, act, t = zip(*rows, strict=True)
    path = tmp_path_factory.mktemp("log") / "log.parquet"
    pl.DataFrame(
        {"user_id": u, "post_id": p, "author_id": a, "action": act, "timestamp_ms": t}
    ).write_parquet(path)
    return path


def _cfg(**kw: Any) -> RetrievalTrainConfig:
    return RetrievalTrainConfig.tiny(progress=False, num_threads=1, holdout="time:0.3", batch_size=8, **kw)


@pytest.mark.parametrize("patience", [0, 1])
def test_stops_when_heldout_metric_stops_improving(
    small_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patience: int
) -> None:
    states: list[dict[str, torch.Tensor]] = []
    real = rt.evaluate

    def spy(model: torch.nn.Module, *a: Any, **kw: Any) -> dict[str, Any]:
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(model, *a, **kw)

    monkeypatch.setattr(rt, "evaluate", spy)
    m = train_retrieval(small_log, tmp_path, _cfg(epochs=10.0, patience=patience))
    es = m["early_stopping"]
    assert es["history"] == [1.0] * (patience + 2)  # cannot improve after epoch 1
    assert es["stopped_early"] and es["best_epoch"] == 1
    steps_per_epoch = es["best_step"]
    assert steps_per_epoch >= 1
    assert m["steps"] == (patience + 2) * steps_per_epoch < 10 * steps_per_epoch
    # the checkpoint is epoch 1's weights (the first evaluation), not the last epoch's
    model, _ = load_two_tower(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["step"] == steps_per_epoch
    saved = model.state_dict()
    assert all(torch.equal(saved[k], states[0][k]) for k in saved)
    assert any(not torch.equal(states[0][k], states[-2][k]) for k in saved)  # later epochs differ


def test_failed_run_leaves_no_output_folder(
    small_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = rt.save_two_tower

    def save_then_fail(out: Path, *a: Any, **kw: Any) -> str:
        real(out, *a, **kw)  # the checkpoint is half of the output: metrics.json never comes
        raise OSError("disk full")

    monkeypatch.setattr(rt, "save_two_tower", save_then_fail)
    out = tmp_path / "model"
    with pytest.raises(OSError, match="disk full"):
        train_retrieval(small_log, out, _cfg(max_steps=1))
    assert not out.exists()
    # a folder that held something before the run is the user's: left alone
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match="disk full"):
        train_retrieval(small_log, kept, _cfg(max_steps=1))
    assert (kept / "notes.txt").read_text() == "mine"
