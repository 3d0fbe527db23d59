"""`foryou model …`: the model registry (phoenix.registry): list and inspect versions, promote one,
roll back (docs/OPERATIONS.md, "Model registry, gate and rollback").

The registry's top level is standard library only, so these commands never load torch."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from foryou.app.cli.common import (
    AsJson,
    ModelsRoot,
    console,
    fail,
    group,
    models_root,
    print_metrics,
    show_table,
)

app = group("Model registry: versions, promotion, rollback.")

Kind = Annotated[str, typer.Option(help="Model kind: ranker | retrieval")]
Version = Annotated[str, typer.Argument(help="A registry version, e.g. ranker-0003")]
Note = Annotated[str, typer.Option(help="Recorded in the kind's promotions.jsonl")]


def _mean_auc(metrics: dict[str, Any]) -> float | None:
    aucs = [v for v in (metrics.get("auc") or {}).values() if isinstance(v, int | float)]
    return sum(aucs) / len(aucs) if aucs else None


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _gate(m: dict[str, Any]) -> str:
    g = (m.get("extra") or {}).get("gate")
    if not g:
        return ""
    return "passed" if g.get("ok") else "[red]failed[/red]"


@app.command("list")
def model_list(
    ctx: typer.Context, kind: Kind = "ranker", models: ModelsRoot = None, as_json: AsJson = False
) -> None:
    """Every version of a kind, oldest first; `*` marks the promoted one."""
    from phoenix.registry import Registry, RegistryError

    root = models_root(ctx, models)
    try:
        versions = Registry(root).list(kind)
    except RegistryError as e:
        fail(e)
    if as_json:
        print(json.dumps(versions))  # plain print: machine-readable, never wrapped
        return
    if not versions:
        console.print(f"no {kind} versions in {root}")
        return
    # few, short, unwrapped columns so a row stays one line: only model_version gives way (with an
    # ellipsis) on a narrow terminal; `model show` has everything
    table = Table(
        title=f"{kind} versions in {root} (* = promoted; created UTC; auc = mean over actions)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    table.add_column("version", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("model_version", overflow="ellipsis")  # the one wrapable column: shrinks first
    table.add_column("parent", no_wrap=True)
    table.add_column("w.ndcg", justify="right", no_wrap=True)
    table.add_column("auc", justify="right", no_wrap=True)  # mean over the actions
    table.add_column("gate", no_wrap=True)
    for m in versions:
        metrics = m.get("metrics") or {}
        table.add_row(
            f"{m['version']} *" if m["promoted"] else m["version"],
            str(m.get("created_at", "")).replace("T", " ")[5:16],  # MM-DD HH:MM
            str(m.get("model_version") or ""),
            m.get("parent") or "",
            _fmt(metrics.get("weighted_ndcg")),
            _fmt(_mean_auc(metrics)),
            _gate(m),
        )
    show_table(table)


@app.command("show")
def model_show(
    ctx: typer.Context, version: Version, models: ModelsRoot = None, as_json: AsJson = False
) -> None:
    """A version's manifest: model version, parent, data window, metrics, gate verdict, files."""
    from foryou.core.actions import normalize_action_keys
    from phoenix.registry import Registry, RegistryError

    try:
        m = Registry(models_root(ctx, models)).show(version)
    except RegistryError as e:
        fail(e)
    # one name per action (foryou.core.actions): versions registered before issue 21 stored their
    # metrics under enum-style keys (SERVER_TWEET_FAV)
    m = normalize_action_keys(m)
    if as_json:
        print(json.dumps(m))
        return
    table = Table("field", "value", title=version, show_header=False)
    table.columns[1].overflow = "fold"
    for k in (
        "kind",
        "promoted",
        "model_version",
        "created_at",
        "parent",
        "checkpoint_format",
        "path",
        "source",
    ):
        table.add_row(k, _fmt(m.get(k)))
    for k, v in (m.get("data_window") or {}).items():
        table.add_row(f"data_window.{k}", _fmt(v))
    extra = m.get("extra") or {}
    gate = extra.get("gate") or {}
    if gate:
        table.add_row("gate", f"{'passed' if gate.get('ok') else 'FAILED'} against {gate.get('against')}")
        for reason in gate.get("reasons", []):
            table.add_row("", f"- {reason}")
    if "warm_started_from" in extra:
        table.add_row("warm_started_from", _fmt(extra["warm_started_from"]))
    files = m.get("files") or {}
    table.add_row("files", ", ".join(sorted(files)))
    show_table(table)
    if m.get("metrics"):
        print_metrics(f"{version} metrics", m["metrics"])


@app.command("promote")
def model_promote(ctx: typer.Context, version: Version, models: ModelsRoot = None, note: Note = "") -> None:
    """Point the version's kind at it; services following the registry load it within one poll."""
    from phoenix.registry import Registry, RegistryError, kind_of

    try:
        kind = kind_of(version)
        before = Registry(models_root(ctx, models)).promote(
            kind, version, note=note or "foryou model promote"
        )
    except RegistryError as e:
        fail(e)
    if before == version:
        console.print(f"{version} is already the promoted {kind}")
    else:
        console.print(f"promoted {version} ({kind}; was {before or 'none'})")


@app.command("register")
def model_register(
    ctx: typer.Context,
    checkpoint: Annotated[
        str, typer.Argument(help="A checkpoint directory (`foryou train ranker|retrieval --out`)")
    ],
    models: ModelsRoot = None,
    promote: Annotated[bool, typer.Option(help="Also promote it (no gate: the operator decides)")] = False,
    note: Note = "",
) -> None:
    """Register a trained checkpoint as a new version (its kind from its config.json format), so
    that services on the registry can serve it: how a retrieval model enters the registry (retrain
    registers its ranker candidates itself)."""
    from pathlib import Path

    from phoenix.registry import KINDS, Registry, RegistryError

    reg = Registry(models_root(ctx, models))
    try:
        cfg = Path(checkpoint) / "config.json"
        fmt = str(json.loads(cfg.read_text()).get("format", "")) if cfg.exists() else ""
        kind = next((k for k in KINDS if fmt.startswith(f"phoenix-{k}/")), None)
        if kind is None:
            raise RegistryError(
                f"{checkpoint}: not a ranker or retrieval checkpoint (config.json format {fmt!r})"
            )
        version = reg.register(kind, checkpoint, extra={"registered_by": note or "foryou model register"})
        if promote:
            reg.promote(kind, version, note=note or "foryou model register --promote")
    except (RegistryError, OSError, ValueError) as e:
        fail(e)
    console.print(f"registered {version}" + (f" and promoted it ({kind})" if promote else f" ({kind})"))


@app.command("rollback")
def model_rollback(
    ctx: typer.Context, kind: Kind = "ranker", models: ModelsRoot = None, note: Note = ""
) -> None:
    """Re-promote the version promoted before the current one."""
    from phoenix.registry import Registry, RegistryError

    reg = Registry(models_root(ctx, models))
    try:
        current = reg.promoted(kind)
        target = reg.rollback(kind, note=note or "foryou model rollback")
    except RegistryError as e:
        fail(e)
    console.print(f"rolled back {kind} to {target} (was {current})")
