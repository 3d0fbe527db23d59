"""The record of the embedded infrastructure: `foryou infra up` (the launcher, in the app layer)
writes `<data_dir>/infra.json` with the Kafka bootstrap and Redis URL it started; services read it
here when no Kafka/Redis is configured, so the core never imports the launcher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATE_FILE = "infra.json"


def state_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / STATE_FILE


def read_state(data_dir: str | Path) -> dict[str, Any] | None:
    """The launcher's record, or None when nothing was started in `data_dir`."""
    p = state_path(data_dir)
    if not p.exists():
        return None
    state: dict[str, Any] = json.loads(p.read_text())
    return state
