"""Registry versions a ranker serves on request (PredictRequest.model_version: experiment buckets
that pin a version, shadow scoring): loaded from the models root on first use and kept in a small
LRU next to the served model. An unknown or unloadable version raises UnknownModelVersion (the
servicer answers FAILED_PRECONDITION); a failed load is not cached, so a version registered later
loads on its next request.

The folders come from the registry's layout (phoenix/registry_layout.py)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from prometheus_client import Counter

from phoenix.registry_layout import version_dir

log = logging.getLogger(__name__)
T = TypeVar("T")

VERSION_LOADS = Counter(
    "phoenix_ranker_version_loads_total", "Requested registry versions loaded (LRU misses)", ["outcome"]
)


class UnknownModelVersion(LookupError):
    """A requested version the ranker cannot serve (not in its registry, or unloadable)."""


class ModelVersions(Generic[T]):
    def __init__(self, root: str | Path | None, load: Callable[[Path], T], max_loaded: int = 3) -> None:
        """`load(version folder)` -> the loaded model (what the handler scores with)."""
        self.root = Path(root) if root else None
        self.load, self.max_loaded = load, max_loaded
        self._lru: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._lru)

    def get(self, version: str) -> T:
        with self._lock:  # one load at a time; requests for a cached version wait at most that long
            hit = self._lru.get(version)
            if hit is not None:
                self._lru.move_to_end(version)
                return hit
            if self.root is None:
                raise UnknownModelVersion(
                    f"model version {version!r} requested, but this ranker serves no registry"
                )
            try:
                model = self.load(self.version_dir(version))
            except (OSError, ValueError, RuntimeError) as e:
                VERSION_LOADS.labels("failed").inc()
                raise UnknownModelVersion(f"cannot serve model version {version!r}: {e}") from None
            VERSION_LOADS.labels("ok").inc()
            log.info("ranker version loaded on request", extra={"version": version})
            self._lru[version] = model
            while len(self._lru) > self.max_loaded:
                self._lru.popitem(last=False)
            return model

    def version_dir(self, version: str) -> Path:
        """<root>/ranker/<version>; FileNotFoundError for a name that is no registered ranker."""
        assert self.root is not None
        d = version_dir(self.root, "ranker", version)
        if d is None:
            raise FileNotFoundError(f"no ranker version {version} in {self.root}")
        return d
