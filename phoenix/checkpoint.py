"""Checkpoint directory shared by phoenix's models: the weights in model.safetensors and the
metadata (format, model_version, step, model config, hash table sizes, extras) in config.json.
Both are written atomically (temp file + rename), the config last: its presence marks a complete
checkpoint. Reading uses safetensors and JSON only, so nothing is ever unpickled."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from safetensors.torch import load_file, save_file

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
M = TypeVar("M", bound=torch.nn.Module)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A safetensors file written atomically (readers never see a half-written file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def model_version_of(state: dict[str, torch.Tensor], step: int, prefix: str) -> str:
    """`<prefix>-<step>-<hash>`: the hash covers a sample of the weights, so two checkpoints saved
    at the same step with different weights get different versions (score-cache keys)."""
    h = hashlib.sha1()
    for k in sorted(state)[:8]:
        h.update(state[k].detach().float().flatten()[:256].cpu().numpy().tobytes())
    return f"{prefix}-{step}-{h.hexdigest()[:10]}"


class ModelConfig(Protocol):
    """What a checkpointed model's `cfg` offers: its own dict and its hash table sizes."""

    hash_config: Any

    def to_dict(self) -> dict[str, Any]: ...


def save_checkpoint(
    out_dir: str | Path,
    model: torch.nn.Module,
    cfg: ModelConfig,
    *,
    fmt: str,
    version_prefix: str,
    step: int,
    extra: dict[str, Any] | None = None,
) -> str:
    """Writes model.safetensors (the model's weights), then config.json (`cfg` and its hash
    tables, the version and `extra`). Returns the model_version."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    version = model_version_of(state, step, version_prefix)
    save_tensors(d / MODEL_FILE, state)
    meta = {
        "format": fmt,
        "model_version": version,
        "step": step,
        "saved_at_ms": int(time.time() * 1000),
        "model": cfg.to_dict(),
        "hash_tables": cfg.hash_config.to_dict(),
        **(extra or {}),
    }
    atomic_write_text(d / CONFIG_FILE, json.dumps(meta, indent=2))
    return version


def read_checkpoint_config(model_dir: str | Path, fmt: str, kind: str) -> dict[str, Any]:
    """config.json of a checkpoint of format `fmt`; `kind` names the model in error messages."""
    p = Path(model_dir) / CONFIG_FILE
    if not p.exists():
        raise FileNotFoundError(f"{model_dir}: no {CONFIG_FILE} (not a {kind} checkpoint)")
    meta = json.loads(p.read_text())
    if meta.get("format") != fmt:
        raise ValueError(f"{model_dir}: unsupported checkpoint format {meta.get('format')!r}")
    return meta


def load_weights(model_dir: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(model_dir) / MODEL_FILE))


def load_checkpoint_model(
    model_dir: str | Path, fmt: str, kind: str, build: Callable[[dict[str, Any]], M]
) -> tuple[M, dict[str, Any]]:
    """(model, config.json) of a checkpoint of format `fmt`: `build(meta["model"])` with the saved
    weights loaded (strict), in eval mode."""
    meta = read_checkpoint_config(model_dir, fmt, kind)
    model = build(meta["model"])
    model.load_state_dict(load_weights(model_dir), strict=True)
    model.eval()
    return model, meta
