"""Two-tower training on the tiny synthetic world beats random retrieval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from phoenix.retrieval.model import load_two_tower
from phoenix.retrieval.train import RetrievalTrainConfig, is_positive, train_retrieval


def test_positive_rule() -> None:
    fav, dwell, not_interested, vqv_block = 1 << 1, 1 << 11, 1 << 17, (1 << 13) | (1 << 16)
    got = is_positive(np.array([fav, dwell | fav, fav | not_interested, vqv_block, 0, 1 << 2], np.uint64))
    assert got.tolist() == [True, True, False, False, False, False]


def test_training_improves_recall_over_random(tiny_world: Path, tmp_path: Path) -> None:
    cfg = RetrievalTrainConfig.tiny(epochs=1.0, progress=False, num_threads=1, eval_max_users=150)
    m = train_retrieval(tiny_world, tmp_path, cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["model"] == m["model"] and saved["steps"] == m["steps"] > 0
    assert m["eval_positives"] > 100
    # random retrieval of k out of N posts finds k/N of the held-out positives
    assert m["model"]["recall@100"] > 1.3 * m["random"]["recall@100"]
    assert m["model"]["recall@1000"] > m["random"]["recall@1000"]
    model, meta = load_two_tower(tmp_path)
    assert meta["model_version"] == m["model_version"]
    assert model.cfg.dim == cfg.model.dim
