"""Which impressions a trainer holds out for its own evaluation (`--holdout`).

* `time:F` - the newest fraction F of all impressions by time (the old default, F = 0.15): a user
  whose whole history falls in that window has no training data.
* `last:N` - each user's last N impressions (users with <= N impressions keep them all for
  training): every user is both trained on and evaluated, the leave-one-out style split.
* `none` - train on everything (no held-out metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

HoldoutKind = Literal["time", "last", "none"]
DEFAULT_HOLDOUT = "time:0.15"


@dataclass(frozen=True, slots=True)
class Holdout:
    kind: HoldoutKind = "time"
    value: float = 0.15  # time: fraction in [0, 1); last: N impressions per user

    @classmethod
    def parse(cls, spec: str) -> Holdout:
        """'time:0.15' | 'last:1' | 'none' (a bare number = time fraction); ValueError otherwise."""
        s = spec.strip().lower()
        if s == "none":
            return cls("none", 0.0)
        kind, _, val = s.partition(":")
        if not val and kind.replace(".", "", 1).isdigit():
            kind, val = "time", kind
        try:
            v = float(val)
        except ValueError:
            v = float("nan")
        if kind == "time" and 0.0 <= v < 1.0:
            return cls("time", v)
        if kind == "last" and v >= 1 and v == int(v):
            return cls("last", v)
        raise ValueError(f"--holdout {spec!r}: expected time:FRACTION (0 <= F < 1), last:N (N >= 1) or none")

    @classmethod
    def resolve(cls, spec: str, eval_fraction: float) -> Holdout:
        """A config's `holdout` string; "" = the newest `eval_fraction` by time (older configs)."""
        return cls.parse(spec) if spec else cls("time", eval_fraction)

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.value:g}"

    def eval_mask(self, user_id: np.ndarray, timestamp_ms: np.ndarray) -> np.ndarray:
        """bool [N] for impressions sorted by (user, time): True = held out."""
        n = len(user_id)
        if self.kind == "none" or n == 0 or (self.kind == "time" and self.value <= 0):
            return np.zeros(n, dtype=bool)
        if self.kind == "time":
            return timestamp_ms >= np.quantile(timestamp_ms, 1.0 - self.value)
        k = int(self.value)
        new_user = np.r_[True, user_id[1:] != user_id[:-1]]
        starts = np.flatnonzero(new_user)
        ends = np.r_[starts[1:], n]
        count = np.repeat(ends - starts, ends - starts)
        from_end = np.repeat(ends, ends - starts) - np.arange(n)  # 1 = the user's last impression
        return (from_end <= k) & (count > k)
