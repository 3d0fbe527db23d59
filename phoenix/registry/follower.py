"""RegistryFollower: keeps a service on the promoted version. A background thread stats the kind's
PROMOTED file every `interval_s` (one stat when nothing changed) and, when the pointer names a new
version, calls `on_change(path, version)` — for a service, its handler's `reload(path)`, which loads
the new checkpoint fully and then swaps one reference, so in-flight requests finish on the model
they started with."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from phoenix.registry.store import Registry

log = logging.getLogger(__name__)


class Reloadable(Protocol):
    """RankingHandler and RetrievalHandler: load a checkpoint directory, return its model version."""

    def reload(self, model_dir: str | Path) -> str: ...


class RegistryFollower:
    def __init__(
        self,
        registry: Registry,
        kind: str,
        on_change: Callable[[Path, str], Any],
        interval_s: float = 2.0,
        loaded_version: str | None = None,
    ) -> None:
        """`loaded_version`: the registry version the service already serves (no reload for it)."""
        self.registry = registry
        self.kind = kind
        self.on_change = on_change
        self.interval_s = interval_s
        self._pointer = registry.pointer_path(kind)
        self._version = loaded_version
        self._seen: tuple[int, int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error: BaseException | None = None

    @property
    def version(self) -> str | None:
        """The registry version last loaded (or given as `loaded_version`)."""
        return self._version

    def check(self) -> bool:
        """One poll; True when a new version was loaded. A failed load is logged and counted and
        not retried until the pointer changes again (a broken version must not be reloaded in a loop;
        the service keeps its current model)."""
        try:
            st = os.stat(self._pointer)
        except FileNotFoundError:
            return False  # nothing promoted yet
        key = (st.st_mtime_ns, st.st_ino, st.st_size)  # every os.replace makes a new inode
        if key == self._seen:
            return False
        self._seen = key
        version = self.registry.promoted(self.kind)
        if version is None or version == self._version:
            return False
        try:
            path = self.registry.path(version)
            self.on_change(path, version)
        except Exception as e:  # noqa: BLE001 - keep serving the current model, report the failure
            self.errors += 1
            self.last_error = e
            log.exception("cannot load promoted %s %s", self.kind, version)
            return False
        log.info("following promoted %s", self.kind, extra={"version": version, "previous": self._version})
        self._version = version
        return True

    def start(self) -> RegistryFollower:
        """Load the promoted version now (synchronously), then poll in a daemon thread."""
        self.check()
        self._thread = threading.Thread(target=self._run, name=f"registry-follower-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - e.g. an unreadable pointer: keep polling
                log.exception("registry follower poll failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> RegistryFollower:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def follow_promoted(
    registry: Registry,
    kind: str,
    handler: Reloadable,
    interval_s: float = 2.0,
    loaded_version: str | None = None,
) -> RegistryFollower:
    """Started follower that keeps `handler` on the promoted version of `kind` by calling
    `handler.reload(path)` (the method ReloadModel calls)."""
    follower = RegistryFollower(
        registry, kind, lambda path, _v: handler.reload(path), interval_s, loaded_version
    )
    return follower.start()
