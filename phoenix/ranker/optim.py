"""Sparse row-wise AdaGrad for the hash embedding table: one accumulator per row (not per weight),
decayed while the row goes untouched, so a rarely seen id still takes real steps when it returns.

Per touched row: acc = acc * 2^(-steps_since_touch / half_life) + mean(g^2 over the row);
row -= lr * g / (sqrt(acc) + eps). Only rows present in the batch are read or written."""

from __future__ import annotations

import torch
from torch import nn


class RowwiseAdagrad:
    def __init__(
        self, weight: nn.Parameter, lr: float, half_life_steps: float = 5000.0, eps: float = 1e-10
    ) -> None:
        self.weight = weight
        self.lr = lr
        self.half_life = half_life_steps
        self.eps = eps
        # the state lives with the table (on the training device)
        self.acc = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device)
        self.last_step = torch.zeros(weight.shape[0], dtype=torch.int64, device=weight.device)
        self.steps = 0

    def zero_grad(self) -> None:
        self.weight.grad = None

    def grad_is_finite(self) -> bool:
        g = self.weight.grad
        return g is None or bool(torch.isfinite(g.coalesce().values()).all())

    @torch.no_grad()
    def step(self, lr_scale: float = 1.0) -> None:
        g = self.weight.grad
        if g is None:
            return
        self.steps += 1
        if g.is_sparse:
            g = g.coalesce()
            rows, vals = g.indices()[0], g.values()
        else:
            rows = g.abs().sum(1).nonzero().squeeze(1)
            vals = g[rows]
        decay = torch.pow(0.5, (self.steps - self.last_step[rows]).float() / self.half_life)
        acc = self.acc[rows] * decay + vals.float().pow(2).mean(1)
        self.acc[rows] = acc
        self.last_step[rows] = self.steps
        upd = vals / (acc.sqrt().unsqueeze(1) + self.eps)
        self.weight.index_add_(0, rows, upd.to(self.weight.dtype), alpha=-self.lr * lr_scale)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"adagrad.acc": self.acc, "adagrad.last_step": self.last_step}

    def load_state_tensors(self, t: dict[str, torch.Tensor], steps: int) -> None:
        self.acc = t["adagrad.acc"].to(self.weight.device, copy=True)
        self.last_step = t["adagrad.last_step"].to(self.weight.device, copy=True)
        self.steps = steps
