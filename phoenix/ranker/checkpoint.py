"""Ranker checkpoint directory (`phoenix.checkpoint` layout, format "phoenix-ranker/1"):
config.json (model config incl. hash table sizes, model_version), model.safetensors, and for
resume optimizer.safetensors + train_state.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phoenix.checkpoint import load_weights, read_checkpoint_config, save_checkpoint
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
        out_dir,
        model.state_dict(),
        fmt=FORMAT,
        version_prefix="ranker",
        step=step,
        model_config=model.cfg.to_dict(),
        hash_tables=model.cfg.hash_config.to_dict(),
        extra=extra,
    )


def read_config(model_dir: str | Path) -> dict[str, Any]:
    return read_checkpoint_config(model_dir, FORMAT, "ranker")


def load_model(model_dir: str | Path) -> tuple[RankerModel, dict[str, Any]]:
    meta = read_config(model_dir)
    model = RankerModel(RankerConfig.from_dict(meta["model"]))
    model.load_state_dict(load_weights(model_dir), strict=True)
    model.eval()
    return model, meta
