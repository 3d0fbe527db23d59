"""The model registry's folder layout, in one place below both its users: the registry
(phoenix/registry/store.py) writes it, the ranker (phoenix/ranker/model_versions.py) reads versions
from it. A module of its own because phoenix.registry imports the ranker, not the other way round.

    <root>/<kind>/<kind>-NNNN/        a registered version: checkpoint files + MANIFEST_FILE"""

from __future__ import annotations

import re
from pathlib import Path

MANIFEST_FILE = "version.json"
VERSION_NAME = re.compile(r"^(?P<kind>[a-z][a-z0-9_]*)-(?P<n>\d{4,})$")


def version_dir(root: Path, kind: str, version: str) -> Path | None:
    """<root>/<kind>/<version> when it is a registered version of that kind, else None."""
    m = VERSION_NAME.match(version)
    d = root / kind / version
    return d if m is not None and m["kind"] == kind and (d / MANIFEST_FILE).exists() else None


def registry_root_of(model_dir: str | Path) -> Path | None:
    """The models root holding `model_dir` when it is a registry version folder, else None."""
    d = Path(model_dir).resolve()
    return d.parent.parent if (d / MANIFEST_FILE).exists() else None
