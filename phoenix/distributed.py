"""Data-parallel training under `torchrun` (gloo on CPU, NCCL on GPU): the trainers' only contact
with torch.distributed.

    FORYOU_TRAIN_RANKER_LOGS=LOGS torchrun --nproc-per-node 2 -m foryou.app.cli train ranker --out OUT

Every rank builds the same model from the same seed and walks the same batch schedule; each
takes its shard of every global batch (`shard`: rows rank, rank+world, ...), so a step sees each
example of the log once across ranks, and gradients are averaged over the ranks before the
optimizer step (`average_gradients`, what DDP's all-reduce does, kept explicit so the ranker's own
row-wise Adagrad on the embedding table works unchanged). The replicas then stay identical: rank 0
alone writes checkpoints and metrics (`is_main`), the others wait at a barrier. Without torchrun
(no WORLD_SIZE, or 1) every call here is a no-op and training is single-process as before."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True, slots=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"  # where collectives' own tensors live: cuda:<local rank> under NCCL

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This rank's share of a global batch (all of it when not distributed)."""
        return rows if not self.enabled else rows[self.rank :: self.world_size]

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """All-reduce and average every gradient over the ranks (a parameter without a gradient on
        this rank contributes zeros, so every rank runs the same collectives)."""
        if not self.enabled:
            return
        for p in params:
            if not p.requires_grad:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            if p.grad.is_sparse:
                # a row-sparse embedding gradient (nn.Embedding(sparse=True)): reduced dense, handed
                # back row-sparse as its optimizer expects (fine for the table sizes trained here;
                # a very large table would want a sparse all-gather instead)
                g = p.grad.to_dense()
                dist.all_reduce(g, op=dist.ReduceOp.SUM)
                p.grad = g.div_(self.world_size).to_sparse(1).coalesce()
                continue
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(self.world_size)

    def mean(self, value: float) -> float:
        """`value` averaged over the ranks (the logged loss of a global batch)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def requested(env: dict[str, str] | None = None) -> bool:
    """Whether this process was started by torchrun with more than one rank."""
    e = os.environ if env is None else env
    return int(e.get("WORLD_SIZE", "1") or 1) > 1


def init_from_env(device: str = "cpu") -> Dist:
    """The process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR/PORT): gloo for CPU training, NCCL for CUDA; a no-op `Dist()` otherwise. Safe to
    call twice."""
    if not requested():
        return Dist()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    nccl = device.startswith("cuda")
    if nccl:  # pragma: no cover - needs GPUs
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if nccl else "gloo", rank=rank, world_size=world)
    return Dist(rank, world, local, f"cuda:{local}" if nccl else "cpu")


def rank_device(device: torch.device, dd: Dist) -> torch.device:
    """The device this rank trains on: under torchrun on CUDA, GPU LOCAL_RANK (one per rank);
    else `device` itself."""
    if device.type == "cuda" and dd.enabled:
        return torch.device("cuda", dd.local_rank)
    return device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
