"""Early stopping of retrieval training on the trainer's held-out metric (`--patience N`): evaluated
after each epoch; training stops once `patience` epochs in a row did not improve on the best, and
the best epoch's weights are put back at the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class EarlyStopping:
    def __init__(self, patience: int, metric: str, evaluate: Callable[[], dict[str, Any]]) -> None:
        """`evaluate()`: the trainer's held-out metrics of the current model (`metric` is read from
        its "model" entry, e.g. recall@100; higher is better)."""
        if patience < 0:
            raise ValueError("patience must be >= 0")
        self.patience = patience
        self.metric = metric
        self._evaluate = evaluate
        self.history: list[float] = []  # the metric after each evaluated epoch
        self.best_value = float("-inf")
        self.best_step = 0
        self.best_epoch = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        self._last_eval_step = -1
        self.stopped = False

    def _measure(self, model: torch.nn.Module, step: int) -> float:
        res = self._evaluate().get("model")
        if res is None:
            raise ValueError("early stopping: the held-out split has no positive engagements to measure")
        if self.metric not in res:
            raise ValueError(f"early stopping: unknown metric {self.metric!r}; one of {', '.join(res)}")
        value = float(res[self.metric])
        self.history.append(value)
        self._last_eval_step = step
        if value > self.best_value:
            self.best_value, self.best_step, self.best_epoch = value, step, len(self.history)
            self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return value

    def epoch_done(self, model: torch.nn.Module, step: int) -> bool:
        """Evaluate after an epoch; True = stop training."""
        self._measure(model, step)
        self.stopped = len(self.history) - self.best_epoch > self.patience
        return self.stopped

    def finish(self, model: torch.nn.Module, step: int) -> None:
        """After training: measure a last, partial epoch, then load the best weights into `model`."""
        if step != self._last_eval_step:
            self._measure(model, step)
        if self._best_state is not None and self.best_step != step:
            model.load_state_dict(self._best_state)

    def summary(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "patience": self.patience,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "best": self.best_value,
            "stopped_early": self.stopped,
        }
