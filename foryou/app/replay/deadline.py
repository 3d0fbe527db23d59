"""The optional overall time limit of a replay. A replay never ends because the broker is quiet;
when it must not run forever, it fails loudly with what it was waiting for."""

from __future__ import annotations

import time


class ReplayTimeout(TimeoutError):
    """The replay ran past its `timeout_s` before reaching its end offsets (nothing was lost: the
    parts written so far are in the manifest, and a rerun continues from there)."""


class Deadline:
    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self._at = None if timeout_s is None else time.monotonic() + timeout_s

    def check(self, waiting_for: str) -> None:
        if self._at is not None and time.monotonic() > self._at:
            raise ReplayTimeout(f"replay timed out after {self.timeout_s:g} s waiting for {waiting_for}")
