"""`--device` (issue 22): explicit `--device cpu` trains; a CUDA device on a machine without one
is refused in one line, naming the flag; FAISS on this machine has no GPU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from foryou.app.cli import app
from phoenix.device import DeviceError, faiss_gpus, faiss_index_to_device, resolve_device
from world.config import WorldConfig
from world.generator import generate_world

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="expected cpu"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:1")
        import faiss

        assert faiss_gpus() == 0
        index = faiss.IndexFlatIP(4)
        assert faiss_index_to_device(index, torch.device("cpu")) is index


def test_train_with_explicit_cpu_device_and_missing_cuda(tmp_path: Path) -> None:
    world = generate_world(WorldConfig.tiny(seed=0, now_ms=int(time.time() * 1000)))
    logs = str(world.save(tmp_path / "world"))
    out = tmp_path / "retrieval"
    args = ["train", "retrieval", "--logs", logs, "--out", str(out), "--preset", "tiny", "--max-steps", "3"]
    res = runner.invoke(app, [*args, "--threads", "1", "--device", "cpu"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "device: cpu" in res.output and (out / "metrics.json").exists()
    if torch.cuda.is_available():
        return  # a GPU machine: the refusal below is for machines without CUDA
    bad = runner.invoke(app, [*args[:4], "--out", str(tmp_path / "gpu"), "--device", "cuda"], env=WIDE)
    assert bad.exit_code == 2
    lines = [ln for ln in bad.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--device cuda: CUDA is not available" in lines[0], bad.output
    assert not (tmp_path / "gpu").exists()
