"""Warm start for a retrain: seed an output directory so `train_ranker` continues from a registered
checkpoint's weights — at step 0, with fresh optimiser state and the new run's config and schedule.

It writes what `train_ranker` resumes from (config.json + model.safetensors, optimizer.safetensors
holding only a fresh row-wise AdaGrad state, train_state.json at step 0), so training itself needs
no warm-start option. Resuming also skips the PPMI table initialisation, which would overwrite the
trained author rows."""

from __future__ import annotations

from pathlib import Path

from phoenix.checkpoint import load_weights
from phoenix.ranker.config import TrainConfig
from phoenix.ranker.model import RankerModel
from phoenix.ranker.optim import RowwiseAdagrad
from phoenix.ranker.train import save_resumable


def shapes_match(model: RankerModel, weights: dict) -> bool:
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return own == {k: tuple(v.shape) for k, v in weights.items()}


def prepare_warm_start(out_dir: str | Path, source_dir: str | Path, config: TrainConfig) -> str | None:
    """Seed `out_dir` (empty or missing) with `source_dir`'s weights in `config.model`'s architecture.
    Returns the seeded model_version, or None when the weight shapes differ (train from scratch)."""
    weights = load_weights(source_dir)
    model = RankerModel(config.model)
    if not shapes_match(model, weights):
        return None
    model.load_state_dict(weights, strict=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    adagrad = RowwiseAdagrad(model.table.table.weight, config.embedding_lr)  # fresh accumulators
    return save_resumable(
        out,
        model,
        adagrad.state_tensors(),
        0,
        0,
        config,
        {"loss": [], "eval": []},
        extra={"warm_start_from": str(source_dir)},
    )
