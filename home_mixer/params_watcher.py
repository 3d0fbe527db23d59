"""Reloads the params file while home_mixer runs: every `interval_s` one stat of the file; when its
(mtime, size, inode) changed, it is read and validated (home_mixer.experiments) and, if servable,
swapped in as one reference (requests in flight finish on the config they started with). A bad file
is refused with one log line and a counted failure; the config loaded before keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter, Gauge, Info

from home_mixer.experiments import ParamsFileError, ServingConfig, load_params_file

log = logging.getLogger(__name__)

PARAMS_RELOADS = Counter(
    "foryou_home_mixer_params_reloads_total", "Params file loads by outcome (ok | refused)", ["outcome"]
)
PARAMS_VERSION = Info("foryou_home_mixer_params", "The params file version being served")
PARAMS_LOADED_AT = Gauge(
    "foryou_home_mixer_params_loaded_timestamp_seconds", "When the served params file was loaded"
)


class ParamsFileWatcher:
    def __init__(
        self, path: str | Path, apply: Callable[[ServingConfig], None], interval_s: float = 2.0
    ) -> None:
        self.path, self.apply, self.interval_s = Path(path), apply, interval_s
        self._seen: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.version: str | None = None  # the version served (None: none loaded yet)
        self.refused = 0
        self.last_error = ""

    def load_initial(self) -> ServingConfig:
        """Load the file at start-up: ParamsFileError if it is not servable (nothing to keep)."""
        self._seen = self._stat()
        cfg = load_params_file(self.path)
        self._serve(cfg)
        return cfg

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _serve(self, cfg: ServingConfig) -> None:
        self.apply(cfg)
        self.version = cfg.version
        PARAMS_RELOADS.labels("ok").inc()
        PARAMS_VERSION.info({"version": cfg.version, "path": str(self.path)})
        PARAMS_LOADED_AT.set(time.time())
        log.info(
            "params file loaded",
            extra={"path": str(self.path), "version": cfg.version, "experiments": len(cfg.experiments)},
        )

    def check(self) -> bool:
        """One poll; True when a changed file was loaded. A changed file that does not load is
        refused once (logged, counted) and not re-read until it changes again."""
        key = self._stat()
        if key == self._seen:
            return False
        self._seen = key
        if key is None:
            self._refuse("file missing")
            return False
        try:
            cfg = load_params_file(self.path)
        except ParamsFileError as e:
            self._refuse(str(e))
            return False
        self._serve(cfg)
        return True

    def _refuse(self, why: str) -> None:
        self.refused += 1
        self.last_error = why
        PARAMS_RELOADS.labels("refused").inc()
        log.error("params file refused, still serving version %s: %s", self.version, why)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.check()
            except Exception:  # noqa: BLE001 - keep watching; the loaded config keeps serving
                log.exception("params file poll failed")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="params-file-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
