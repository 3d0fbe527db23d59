"""The model registry: a models root with, per model kind, one immutable folder per version (the
checkpoint files + a `version.json` manifest) and a `PROMOTED` pointer replaced atomically.

    <root>/<kind>/<kind>-0001/      config.json, model.safetensors, … , version.json
    <root>/<kind>/PROMOTED          {"version", "model_version", "previous": [older promotions], …}
    <root>/<kind>/promotions.jsonl  audit log: one line per promote / rollback
    <root>/<kind>/.lock             writers' flock (readers never lock)

A version folder appears by one rename of a complete staging folder, so a reader sees a version
whole or not at all. PROMOTED carries the stack of earlier promotions, so a rollback and the pointer
change together in one os.replace. Only the standard library: `foryou model list` needs no torch.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from phoenix.registry.atomic import append_jsonl, file_lock, read_json, read_jsonl, write_json_atomic
from phoenix.registry_layout import MANIFEST_FILE, VERSION_NAME

KINDS = ("ranker", "retrieval")
PROMOTED_FILE = "PROMOTED"
HISTORY_FILE = "promotions.jsonl"
LOCK_FILE = ".lock"
MANIFEST_FORMAT = "foryou-registry/1"
CHECKPOINT_CONFIG = "config.json"  # phoenix/checkpoint.py's layout
CHECKPOINT_WEIGHTS = "model.safetensors"
# resume-only training state: a version keeps what serving, audits and reports need
SKIPPED_FILES = frozenset({"optimizer.safetensors", "train_state.json", MANIFEST_FILE})
MAX_STACK = 1000  # earlier promotions remembered for rollback


class RegistryError(RuntimeError):
    """A registry request that cannot be honoured (unknown version, nothing to roll back to, …)."""


class _Any:
    """`promote(expect=ANY)`: promote whatever is promoted now."""


ANY = _Any()


def kind_of(version: str) -> str:
    m = VERSION_NAME.match(version)
    if m is None:
        raise RegistryError(f"{version!r} is not a registry version (<kind>-<number>)")
    return m["kind"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checkpoint_meta(src: Path, kind: str) -> dict[str, Any]:
    """config.json of a phoenix checkpoint of this kind (format `phoenix-<kind>/…`)."""
    cfg = src / CHECKPOINT_CONFIG
    if not cfg.exists() or not (src / CHECKPOINT_WEIGHTS).exists():
        raise RegistryError(f"{src}: not a checkpoint (needs {CHECKPOINT_CONFIG} and {CHECKPOINT_WEIGHTS})")
    meta = json.loads(cfg.read_text())
    if not str(meta.get("format", "")).startswith(f"phoenix-{kind}/"):
        raise RegistryError(f"{src}: checkpoint format {meta.get('format')!r} is not a {kind}")
    return meta


class Registry:
    """Models root. Writers (register, promote, rollback) take the kind's lock; readers never do."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # --- paths ---

    def kind_dir(self, kind: str, create: bool = False) -> Path:
        if kind not in KINDS:
            raise RegistryError(f"unknown model kind {kind!r} (one of {', '.join(KINDS)})")
        d = self.root / kind
        if create:
            d.mkdir(parents=True, exist_ok=True)
        return d

    def path(self, version: str) -> Path:
        """The folder of a registered version."""
        d = self.kind_dir(kind_of(version)) / version
        if not (d / MANIFEST_FILE).exists():
            raise RegistryError(f"no version {version} in {self.root}")
        return d

    def pointer_path(self, kind: str) -> Path:
        return self.kind_dir(kind) / PROMOTED_FILE

    # --- versions ---

    def register(
        self,
        kind: str,
        checkpoint_dir: str | Path,
        metrics: dict[str, Any] | None = None,
        data_window: dict[str, Any] | None = None,
        parent: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Copy a checkpoint in as a new version and return its name (`<kind>-NNNN`). Does not
        promote it. `parent`: the version it was derived from / compared against."""
        kd = self.kind_dir(kind, create=True)
        src = Path(checkpoint_dir)
        meta = _checkpoint_meta(src, kind)
        if parent is not None:
            if kind_of(parent) != kind:
                raise RegistryError(f"parent {parent} is not a {kind}")
            self.path(parent)
        staging = kd / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            files: dict[str, dict[str, Any]] = {}
            for f in sorted(src.iterdir()):
                if not f.is_file() or f.name in SKIPPED_FILES or f.name.endswith(".tmp"):
                    continue
                shutil.copy2(f, staging / f.name)
                files[f.name] = {"bytes": f.stat().st_size, "sha256": _sha256(staging / f.name)}
            created = _now_ms()
            manifest: dict[str, Any] = {
                "format": MANIFEST_FORMAT,
                "kind": kind,
                "model_version": meta.get("model_version"),
                "checkpoint_format": meta.get("format"),
                "created_at_ms": created,
                "created_at": _iso(created),
                "parent": parent,
                "source": str(src.resolve()),
                "data_window": data_window or {},
                "metrics": metrics or {},
                "files": files,
                **({"extra": extra} if extra else {}),
            }
            with file_lock(kd / LOCK_FILE):  # the number and the rename under one lock
                version = f"{kind}-{self._next_number(kind):04d}"
                manifest["version"] = version
                write_json_atomic(staging / MANIFEST_FILE, manifest)
                staging.rename(kd / version)
            return version
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _next_number(self, kind: str) -> int:
        nums = [
            int(m["n"])
            for p in self.kind_dir(kind).iterdir()
            if (m := VERSION_NAME.match(p.name)) is not None and m["kind"] == kind
        ]
        return max(nums, default=0) + 1

    def list(self, kind: str) -> builtins.list[dict[str, Any]]:
        """Manifests of every version of `kind`, oldest first, each with `path` and `promoted`."""
        kd = self.kind_dir(kind)
        if not kd.exists():
            return []
        current = self.promoted(kind)
        out = []
        names = [p.name for p in kd.iterdir() if VERSION_NAME.match(p.name) and (p / MANIFEST_FILE).exists()]
        for name in sorted(names, key=lambda n: int(n.rsplit("-", 1)[1])):
            out.append(self._describe(kd / name, current))
        return out

    def show(self, version: str) -> dict[str, Any]:
        """The manifest of `version`, with `path` and `promoted` added."""
        return self._describe(self.path(version), self.promoted(kind_of(version)))

    @staticmethod
    def _describe(d: Path, current: str | None) -> dict[str, Any]:
        m = read_json(d / MANIFEST_FILE)
        return {**m, "path": str(d), "promoted": m["version"] == current}

    # --- the promoted pointer ---

    def pointer(self, kind: str) -> dict[str, Any] | None:
        """PROMOTED's content, or None before the first promotion."""
        try:
            return read_json(self.pointer_path(kind))
        except FileNotFoundError:
            return None

    def promoted(self, kind: str) -> str | None:
        p = self.pointer(kind)
        return None if p is None else p["version"]

    def promoted_path(self, kind: str) -> Path | None:
        v = self.promoted(kind)
        return None if v is None else self.path(v)

    def promote(
        self, kind: str, version: str, *, expect: str | None | _Any = ANY, note: str = ""
    ) -> str | None:
        """Point `kind` at `version`; returns the version promoted before. `expect`: refuse
        (RegistryError) unless that is what is promoted now — a retrain compared its candidate
        against it, so a promotion made meanwhile must not be overwritten blindly."""
        if kind_of(version) != kind:
            raise RegistryError(f"{version} is not a {kind}")
        model_version = read_json(self.path(version) / MANIFEST_FILE).get("model_version")
        kd = self.kind_dir(kind)
        with file_lock(kd / LOCK_FILE):
            cur = self.pointer(kind)
            current = None if cur is None else cur["version"]
            if not isinstance(expect, _Any) and expect != current:
                raise RegistryError(f"{kind}: promoted is {current}, expected {expect}")
            if current == version:
                return current
            stack = [] if cur is None else [*cur["previous"], current][-MAX_STACK:]
            self._write_pointer(kind, version, model_version, stack, "promote", note, current)
        return current

    def rollback(self, kind: str, note: str = "") -> str:
        """Re-promote the version promoted before the current one; returns it."""
        kd = self.kind_dir(kind)
        with file_lock(kd / LOCK_FILE):
            cur = self.pointer(kind)
            if cur is None or not cur["previous"]:
                raise RegistryError(f"{kind}: no earlier promotion to roll back to")
            target = cur["previous"][-1]
            model_version = read_json(self.path(target) / MANIFEST_FILE).get("model_version")
            stack = cur["previous"][:-1]
            self._write_pointer(kind, target, model_version, stack, "rollback", note, cur["version"])
        return target

    def _write_pointer(
        self,
        kind: str,
        version: str,
        model_version: str | None,
        stack: builtins.list[str],
        action: str,
        note: str,
        previous: str | None,
    ) -> None:
        """PROMOTED first (what services follow), then the audit line. Caller holds the lock."""
        at = _now_ms()
        write_json_atomic(
            self.pointer_path(kind),
            {
                "version": version,
                "model_version": model_version,
                "action": action,
                "at_ms": at,
                "at": _iso(at),
                "previous": stack,
            },
        )
        record = {"at_ms": at, "at": _iso(at), "action": action, "version": version, "previous": previous}
        append_jsonl(self.kind_dir(kind) / HISTORY_FILE, {**record, **({"note": note} if note else {})})

    def history(self, kind: str) -> builtins.list[dict[str, Any]]:
        """Every promote / rollback of `kind`, oldest first."""
        return read_jsonl(self.kind_dir(kind) / HISTORY_FILE)
