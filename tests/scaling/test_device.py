"""`--device` (issue 22): explicit `--device cpu` trains and serves exactly like the default; a CUDA
device on a machine without one is refused in one line, naming the flag, for training and for
serving; the retrieval index picks a FAISS GPU only for CUDA with a FAISS that has GPUs."""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from foryou.app.cli import app
from phoenix.device import DeviceError, faiss_gpu_for, faiss_gpus, faiss_index_to_device, resolve_device
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.testing import random_request
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


# --- issue 22: the device plumbing, exercised on the CPU (no GPU on this machine) ---


@pytest.fixture(scope="module")
def world_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    world = generate_world(WorldConfig.tiny(seed=0, now_ms=int(time.time() * 1000)))
    return Path(world.save(tmp_path_factory.mktemp("world")))


def test_explicit_cpu_device_trains_like_the_default(world_logs: Path, tmp_path: Path) -> None:
    from phoenix.ranker.config import RankerConfig, TrainConfig
    from phoenix.ranker.train import train_ranker
    from phoenix.retrieval.train import RetrievalTrainConfig, train_retrieval

    def ranker(out: str, **kw: object) -> dict:
        cfg = TrainConfig(model=RankerConfig.tiny(), batch_size=32, max_steps=4, progress=False)
        cfg.num_threads, cfg.eval_every, cfg.checkpoint_every = 1, 0, 0
        return train_ranker(world_logs, tmp_path / out, cfg, evaluate=False, **kw)

    default, cpu = ranker("r_default"), ranker("r_cpu", device=torch.device("cpu"))
    assert cpu["device"] == default["device"] == "cpu"
    assert np.isfinite(default["final_train_loss_ema"])
    np.testing.assert_allclose(cpu["final_train_loss_ema"], default["final_train_loss_ema"], rtol=1e-6)
    a, b = (
        load_file(str(tmp_path / "r_default/model.safetensors")),
        load_file(str(tmp_path / "r_cpu/model.safetensors")),
    )
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k]) for k in a)

    def retrieval(out: str, **kw: object) -> dict:
        cfg = RetrievalTrainConfig.tiny(max_steps=4, progress=False, num_threads=1)
        return train_retrieval(world_logs, tmp_path / out, cfg, **kw)

    d, c = retrieval("t_default"), retrieval("t_cpu", device="cpu")
    assert c["device"] == d["device"] == "cpu"
    np.testing.assert_allclose(c["final_loss"], d["final_loss"], rtol=1e-6)
    assert c["model"] == d["model"]  # the held-out recall, embedded and scored on the device


def test_train_batch_moves_every_tensor() -> None:
    """`TrainBatch.to` is what puts a CPU-built batch on the training device: every tensor moves
    ("meta" stands in for a GPU), the numpy bookkeeping stays on the host."""
    from phoenix.ranker.data import TrainBatch

    batch, _, _ = random_request(RankerConfig.tiny(), [3, 1], 4)
    lab = torch.zeros(2, 4, 64)
    tb = TrainBatch(batch, lab, lab, lab[..., 0], lab[..., 0], np.zeros((2, 4), np.int64))
    moved = tb.to("meta")
    tensors = [v for f in fields(moved.batch) if (v := getattr(moved.batch, f.name)) is not None]
    tensors += [moved.labels, moved.label_mask, moved.dwell_target, moved.dwell_mask]
    assert len(tensors) >= 13 and all(t.device.type == "meta" for t in tensors)
    assert isinstance(moved.cand_index, np.ndarray)
    assert tb.to("cpu").labels is tb.labels  # on its own device: nothing is copied


def test_handlers_on_explicit_cpu_device(tmp_path: Path) -> None:
    from foryou.core.snowflake import make_id
    from phoenix.ranker.handler import Candidates, History, RankingHandler, RankingHandlerConfig
    from phoenix.ranker.model import RankerModel
    from phoenix.retrieval.handler import RetrievalHandler, RetrievalHandlerConfig
    from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel

    torch.manual_seed(0)
    model = RankerModel(RankerConfig.tiny())
    now = 1_760_000_000_000
    rng = np.random.default_rng(0)
    posts, authors = rng.integers(1, 10**12, 5), rng.integers(1, 10**6, 5)
    hist = History(posts, authors, np.full(5, 2, np.uint64), np.zeros(5, np.int64), np.full(5, 1000))
    cand = Candidates(
        np.array([make_id(now - 60_000 * i) for i in range(1, 9)]),
        rng.integers(1, 10**6, 8),
        np.zeros(8, np.int64),
    )
    ref = RankingHandler(model, "v1")
    on_cpu = RankingHandler(model, "v1", RankingHandlerConfig(device="cpu"))
    assert on_cpu.device == torch.device("cpu")
    p0, c0 = ref.predict(7, hist, cand, now_ms=now)
    p1, c1 = on_cpu.predict(7, hist, cand, now_ms=now)
    assert isinstance(p1, np.ndarray) and p1.shape == (8, 64) and p1.dtype == np.float32
    np.testing.assert_allclose(p1, p0, rtol=1e-6)
    np.testing.assert_allclose(c1, c0, rtol=1e-6)
    direct, _, _ = random_request(RankerConfig.tiny(), [1], 1)  # the model itself stayed usable
    assert model(direct)[0].device.type == "cpu"

    torch.manual_seed(1)
    tower = TwoTowerModel(TwoTowerConfig.tiny())
    ids = np.array([make_id(now + i) for i in range(200)], dtype=np.int64)
    authors = rng.integers(1, 40, 200)
    handlers = [
        RetrievalHandler(tower, "t1"),
        RetrievalHandler(tower, "t1", config=RetrievalHandlerConfig(device="cpu")),
    ]
    for h in handlers:
        h.add_posts(ids, authors)
    r0, r1 = (h.retrieve(5, _history(ids[:3], authors[:3]), top_k=20) for h in handlers)
    assert len(r1) == 20 and [p for p, _, _ in r1] == [p for p, _, _ in r0]
    np.testing.assert_allclose([s for _, _, s in r1], [s for _, _, s in r0], rtol=1e-6)
    assert handlers[1].index_gpu is None and not handlers[1].index.on_gpu  # faiss-cpu here


def _history(post_ids: np.ndarray, author_ids: np.ndarray) -> np.ndarray:
    from foryou.core import user_state

    seq = np.zeros(len(post_ids), dtype=user_state.SEQ_DTYPE)
    seq["post_id"], seq["author_id"] = post_ids, author_ids
    seq["action_mask"] = 1 << 1
    return seq


def test_serving_on_missing_cuda_fails_in_one_line(tmp_path: Path) -> None:
    from phoenix.ranker.handler import RankingHandler, RankingHandlerConfig
    from phoenix.ranker.model import RankerModel
    from phoenix.retrieval.handler import RetrievalHandler, RetrievalHandlerConfig
    from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel

    if torch.cuda.is_available():  # a GPU machine: the handler loads its model there instead
        h = RankingHandler(RankerModel(RankerConfig.tiny()), "v", RankingHandlerConfig(device="cuda"))
        assert next(h._loaded.model.parameters()).is_cuda
        return

    with pytest.raises(DeviceError, match="^--device cuda: CUDA is not available[^\n]*$"):
        RankingHandler(RankerModel(RankerConfig.tiny()), "v", RankingHandlerConfig(device="cuda"))
    with pytest.raises(DeviceError, match="^--device cuda:0: CUDA is not available[^\n]*$"):
        RetrievalHandler(
            TwoTowerModel(TwoTowerConfig.tiny()), "v", config=RetrievalHandlerConfig(device="cuda:0")
        )
    for cmd in (["serve", "phoenix"], ["serve", "all"]):
        res = runner.invoke(
            app, [*cmd, "--ranker-model", str(tmp_path / "none"), "--device", "cuda"], env=WIDE
        )
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and "--device cuda: CUDA is not available" in lines[0], res.output
    assert not (tmp_path / "none").exists()


def test_faiss_gpu_selection() -> None:
    """A GPU index only for a CUDA device with a FAISS that has GPUs; faiss-cpu here picks the CPU."""
    cuda0, cuda1 = torch.device("cuda", 0), torch.device("cuda", 1)
    assert faiss_gpu_for(torch.device("cpu")) is None
    assert faiss_gpu_for(torch.device("cpu"), num_gpus=1) is None
    assert faiss_gpus() == 0 and faiss_gpu_for(cuda0) is None  # the installed faiss-cpu
    assert faiss_gpu_for(cuda0, num_gpus=0) is None
    assert faiss_gpu_for(cuda0, num_gpus=1) == 0
    assert faiss_gpu_for(torch.device("cuda"), num_gpus=1) == 0
    assert faiss_gpu_for(cuda1, num_gpus=2) == 1
