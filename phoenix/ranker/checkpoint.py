"""Ranker checkpoint directory (`phoenix.checkpoint` layout, format "phoenix-ranker/1"):
config.json (model config incl. hash table sizes, model_version), model.safetensors, and for
resume optimizer.safetensors + train_state.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phoenix.checkpoint import load_checkpoint_model, read_checkpoint_config, save_checkpoint
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.model import RankerModel

OPTIMIZER_FILE = "optimizer.safetensors"
TRAIN_STATE_FILE = "train_state.json"
FORMAT = "phoenix-ranker/1"


def save_model(
    out_dir: str | Path, model: RankerModel, step: int = 0, extra: dict[str, Any] | None = None
) -> str:
    """Writes the checkpoint (config.json last). Returns the model_version."""
    return save_checkpoint(
        out_dir, model, model.cfg, fmt=FORMAT, version_prefix="ranker", step=step, extra=extra
    )


def read_config(model_dir: str | Path) -> dict[str, Any]:
    return read_checkpoint_config(model_dir, FORMAT, "ranker")


def load_model(model_dir: str | Path) -> tuple[RankerModel, dict[str, Any]]:
    return load_checkpoint_model(
        model_dir, FORMAT, "ranker", lambda d: RankerModel(RankerConfig.from_dict(d))
    )
