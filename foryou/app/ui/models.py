"""The model pages: every model version under the models root, and a page per version with its
manifest, training curves (the folder's PNGs) and evaluation tables (metrics.json and the
registry manifest's metrics).

Two kinds of folders hold a model: registry versions (`<root>/<kind>/<kind>-NNNN/`, with a
`version.json` manifest; phoenix.registry) and the plain checkpoints `foryou demo` trains into
(`<root>/<kind>-<key>/`). The registry's top level is standard library only: no torch here."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from foryou.app.ui.context import ui_of
from foryou.core.actions import normalize_action_keys
from phoenix.registry import KINDS, Registry, RegistryError

_NAME = re.compile(r"^[a-z][a-z0-9_]*-[0-9a-z]+$")  # a version or checkpoint folder name
_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.png$")
MAX_ROWS = 200  # rows of one evaluation table


@dataclass(slots=True)
class ModelEntry:
    name: str  # the URL's key: the registry version or the checkpoint folder's name
    kind: str
    path: Path
    model_version: str
    created_at: str = ""
    promoted: bool = False
    registered: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def list_models(root: Path) -> list[ModelEntry]:
    """Registry versions (oldest first, per kind), then plain checkpoint folders (by name)."""
    out: list[ModelEntry] = []
    reg = Registry(root)
    for kind in KINDS:
        try:
            versions = reg.list(kind)
        except (RegistryError, OSError, ValueError):
            continue
        for m in versions:
            out.append(
                ModelEntry(
                    name=m["version"],
                    kind=kind,
                    path=Path(m["path"]),
                    model_version=str(m.get("model_version") or ""),
                    created_at=str(m.get("created_at") or ""),
                    promoted=bool(m.get("promoted")),
                    registered=True,
                    manifest=m,
                )
            )
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if d.name in KINDS or not _NAME.match(d.name) or not (d / "config.json").is_file():
                continue
            cfg = _read_json(d / "config.json")
            fmt = str(cfg.get("format") or "")
            kind = fmt.removeprefix("phoenix-").split("/")[0] if fmt else d.name.split("-")[0]
            out.append(ModelEntry(d.name, kind, d, str(cfg.get("model_version") or "")))
    return out


def find_model(root: Path, name: str) -> ModelEntry | None:
    if not _NAME.match(name):
        return None
    return next((m for m in list_models(root) if m.name == name), None)


def model_for_version(root: Path, model_version: str) -> ModelEntry | None:
    """The folder serving `model_version` (a registry version before a plain checkpoint)."""
    if not model_version:
        return None
    return next((m for m in list_models(root) if m.model_version == model_version), None)


# --- evaluation tables: nested metrics JSON -> a scalar table and matrix tables ---


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


@dataclass(slots=True)
class Matrix:
    title: str
    columns: list[str]
    rows: list[tuple[str, list[str]]]
    more: int = 0  # rows not shown


def metric_tables(metrics: dict[str, Any], prefix: str = "") -> tuple[list[tuple[str, str]], list[Matrix]]:
    """(scalars as (dotted key, value), matrices): a dict whose values are all dicts of scalars
    (e.g. scorer -> action -> {roc_auc, pr_auc, …}) becomes a matrix (rows = its keys); a list of
    dicts of scalars too; everything else is flattened to dotted keys."""
    scalars: list[tuple[str, str]] = []
    matrices: list[Matrix] = []
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if _scalar(v):
            scalars.append((key, fmt(v)))
        elif isinstance(v, list) and all(_scalar(x) for x in v):
            scalars.append((key, ", ".join(fmt(x) for x in v[:50]) + (" …" if len(v) > 50 else "")))
        elif isinstance(v, list) and _rows(v):
            matrices.append(_matrix(key, {str(i): x for i, x in enumerate(v)}))
        elif isinstance(v, dict) and _rows(list(v.values())):
            matrices.append(_matrix(key, v))
        elif isinstance(v, dict):
            s, m = metric_tables(v, key + ".")
            scalars += s
            matrices += m
        else:
            scalars.append((key, json.dumps(v, default=str)[:500]))
    return scalars, matrices


def _rows(values: list[Any]) -> bool:
    """Every value a non-empty dict of scalars: a table's rows."""
    return bool(values) and all(isinstance(x, dict) and x and all(map(_scalar, x.values())) for x in values)


def _matrix(title: str, rows: dict[str, dict[str, Any]]) -> Matrix:
    columns: list[str] = []
    for r in rows.values():
        columns += [c for c in r if c not in columns]
    items = list(rows.items())
    return Matrix(
        title,
        columns,
        [(str(name), [fmt(r.get(c)) for c in columns]) for name, r in items[:MAX_ROWS]],
        more=max(0, len(items) - MAX_ROWS),
    )


# --- routes ---


def models_page(request: Request) -> Response:
    ui = ui_of(request)
    return ui.render(request, "models.html", {"models": list_models(ui.config.models_root)})


def model_page(request: Request) -> Response:
    ui = ui_of(request)
    name = request.path_params["name"]
    m = find_model(ui.config.models_root, name)
    if m is None:
        raise HTTPException(404, f"no model {name} in {ui.config.models_root}")
    sections: list[tuple[str, list[tuple[str, str]], list[Matrix]]] = []
    if m.registered:
        # one name per action: versions registered before issue 21 have enum-style keys
        manifest = {k: v for k, v in m.manifest.items() if k not in ("metrics", "files", "format")}
        sections.append(("registry manifest", *metric_tables(normalize_action_keys(manifest))))
        if m.manifest.get("metrics"):
            sections.append(
                ("registry metrics", *metric_tables(normalize_action_keys(m.manifest["metrics"])))
            )
    training = normalize_action_keys(_read_json(m.path / "metrics.json"))
    config = training.pop("config", None)
    if training:
        sections.append(("training and evaluation (metrics.json)", *metric_tables(training)))
    if config is None:
        config = _read_json(m.path / "config.json")
    report = m.path / "report.md"
    return ui.render(
        request,
        "model.html",
        {
            "m": m,
            "images": sorted(p.name for p in m.path.glob("*.png")),
            "sections": sections,
            "config": json.dumps(config, indent=2, default=str) if config else "",
            "report": report.read_text(errors="replace") if report.is_file() else "",
        },
    )


def model_file(request: Request) -> Response:
    ui = ui_of(request)
    name, file = request.path_params["name"], request.path_params["file"]
    m = find_model(ui.config.models_root, name)
    if m is None or not _FILE.match(file) or not (m.path / file).is_file():
        raise HTTPException(404, f"no {file} in model {name}")
    return FileResponse(m.path / file, media_type="image/png")


ROUTES = [
    Route("/models", models_page, name="models"),
    Route("/models/{name}", model_page, name="model"),
    Route("/models/{name}/{file}", model_file, name="model_file"),
]
