"""Checkpoint directory: config.json (model config incl. hash table sizes, model_version),
model.safetensors, and for resume optimizer.safetensors + train_state.json. Loading reads tensors
with safetensors and JSON only: nothing is unpickled."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from phoenix.ranker.config import RankerConfig
from phoenix.ranker.model import RankerModel

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
TRAIN_STATE_FILE = "train_state.json"
FORMAT = "phoenix-ranker/1"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def model_version_of(state: dict[str, torch.Tensor], step: int) -> str:
    h = hashlib.sha1()
    for k in sorted(state)[:8]:
        h.update(state[k].detach().float().flatten()[:256].numpy().tobytes())
    return f"ranker-{step}-{h.hexdigest()[:10]}"


def save_model(
    out_dir: str | Path, model: RankerModel, step: int = 0, extra: dict[str, Any] | None = None
) -> str:
    """Writes model.safetensors then config.json (the config is written last: its presence marks a
    complete checkpoint). Returns the model_version."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    version = model_version_of(state, step)
    save_tensors(d / MODEL_FILE, state)
    meta = {
        "format": FORMAT,
        "model_version": version,
        "step": step,
        "saved_at_ms": int(time.time() * 1000),
        "model": model.cfg.to_dict(),
        "hash_tables": model.cfg.hash_config.to_dict(),
        **(extra or {}),
    }
    _atomic_write_text(d / CONFIG_FILE, json.dumps(meta, indent=2))
    return version


def read_config(model_dir: str | Path) -> dict[str, Any]:
    p = Path(model_dir) / CONFIG_FILE
    if not p.exists():
        raise FileNotFoundError(f"{model_dir}: no {CONFIG_FILE} (not a ranker checkpoint)")
    meta = json.loads(p.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{model_dir}: unsupported checkpoint format {meta.get('format')!r}")
    return meta


def load_model(model_dir: str | Path) -> tuple[RankerModel, dict[str, Any]]:
    meta = read_config(model_dir)
    model = RankerModel(RankerConfig.from_dict(meta["model"]))
    state = load_file(str(Path(model_dir) / MODEL_FILE))
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, meta
