"""Checkpoint directory shared by phoenix's models: the weights in model.safetensors and the
metadata (format, model_version, step, model config, hash table sizes, extras) in config.json.
Both are written atomically (temp file + rename), the config last: its presence marks a complete
checkpoint. Reading uses safetensors and JSON only, so nothing is ever unpickled."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"


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
        h.update(state[k].detach().float().flatten()[:256].numpy().tobytes())
    return f"{prefix}-{step}-{h.hexdigest()[:10]}"


def save_checkpoint(
    out_dir: str | Path,
    state: dict[str, torch.Tensor],
    *,
    fmt: str,
    version_prefix: str,
    step: int,
    model_config: dict[str, Any],
    hash_tables: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> str:
    """Writes model.safetensors, then config.json. Returns the model_version."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    version = model_version_of(state, step, version_prefix)
    save_tensors(d / MODEL_FILE, state)
    meta = {
        "format": fmt,
        "model_version": version,
        "step": step,
        "saved_at_ms": int(time.time() * 1000),
        "model": model_config,
        "hash_tables": hash_tables,
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
