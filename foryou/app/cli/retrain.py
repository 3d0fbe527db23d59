"""`foryou retrain`: train a ranker candidate, gate it against the promoted version, register it and
promote it when the gate holds (foryou.app.retrain; docs/OPERATIONS.md, "Model registry, gate and
rollback").

Exit codes, so a scheduler can tell the outcomes apart: 0 promoted (or a dry run), 3 the gate
rejected the candidate (registered, not promoted), 4 the gate passed but another promotion happened
during the run (registered, not promoted: rerun to compare against it), 2 bad input."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from foryou.app.cli.common import AsJson, ModelsRoot, console, fail, models_root

EXIT_REJECTED = 3
EXIT_STALE = 4


def retrain(
    ctx: typer.Context,
    logs: Annotated[str, typer.Option(help="Training log: a log directory or a log Parquet (dataset build)")],
    eval_logs: Annotated[
        str | None,
        typer.Option(help="A later log as the held-out window (default: the newest 15% of --logs)"),
    ] = None,
    models: ModelsRoot = None,
    warm_start: Annotated[
        bool, typer.Option(help="Start from the promoted version's weights when the shapes match")
    ] = True,
    dry_run: Annotated[bool, typer.Option(help="Register and report, never promote")] = False,
    tiny: Annotated[bool, typer.Option(help="Tiny model (tests, smoke runs)")] = False,
    small: Annotated[bool, typer.Option(help="Small model (width 64, 2 layers)")] = False,
    auc_tolerance: Annotated[
        float, typer.Option(help="Largest allowed drop of any gated action's ROC-AUC")
    ] = 0.005,
    min_positives: Annotated[
        int, typer.Option(help="Actions with fewer held-out positives are not gated")
    ] = 50,
    weighted_metric: Annotated[str, typer.Option(help="weighted_ndcg | weighted_auc")] = "weighted_ndcg",
    weighted_tolerance: Annotated[
        float, typer.Option(help="Largest allowed drop of --weighted-metric")
    ] = 0.0,
    max_steps: Annotated[int, typer.Option(help="Cap on training steps, 0 = from the epochs")] = 0,
    sids: Annotated[
        str, typer.Option(help="Parquet with post_id + sid (default: the log's posts table)")
    ] = "",
    threads: Annotated[int, typer.Option(help="torch threads, 0 = torch default")] = 0,
    as_json: AsJson = False,
) -> None:
    """Retrain the ranker: train, gate against the promoted version, register, promote if it passes.

    Exit codes: 0 promoted (or --dry-run), 3 the gate rejected the candidate, 4 the gate passed but
    another version was promoted during the run, 2 bad input. The candidate is registered in every
    case; its report.md explains the verdict."""
    import dataclasses

    from foryou.app.retrain import GateRule, default_train_config, result_summary
    from foryou.app.retrain import retrain as run_retrain
    from phoenix.ranker.config import RankerConfig, TrainConfig
    from phoenix.registry import Registry, RegistryError

    if tiny and small:
        fail(ValueError("--tiny and --small are exclusive"))
    reg = Registry(models_root(ctx, models))
    try:
        rule = GateRule(auc_tolerance, min_positives, weighted_metric, weighted_tolerance)
        config = None  # retrain's default: the promoted model's architecture (warm start fine-tunes)
        if tiny or small or max_steps or sids or threads:
            config = default_train_config(reg, reg.promoted("ranker"), warm_start)
            model = RankerConfig.tiny() if tiny else RankerConfig.small() if small else config.model
            if model != config.model:  # another architecture: no warm start, the full schedule
                config = TrainConfig(model=model)
            config = dataclasses.replace(config, max_steps=max_steps, num_threads=threads)
            if sids:
                config = dataclasses.replace(config, sids_path=sids)
        r = run_retrain(
            logs,
            reg,
            warm_start=warm_start,
            eval_logs=eval_logs,
            config=config,
            rule=rule,
            promote=not dry_run,
        )
    except (FileNotFoundError, ValueError, RegistryError) as e:
        fail(e)
    summary = result_summary(r)
    if as_json:
        print(json.dumps(summary))  # plain print: machine-readable, never wrapped
    else:
        verdict = (
            "[green]promoted[/green]"
            if r.promoted
            else ("gate passed" if r.gate_ok else "[red]gate rejected[/red]") + ", not promoted"
        )
        table = Table("", "", title=f"retrain {r.version}: {verdict}", show_header=False)
        table.columns[1].overflow = "fold"
        for k, v in summary.items():
            if k != "reasons":
                table.add_row(k, "" if v is None else str(v))
        console.print(table)
        for reason in r.reasons:
            console.print(f"- {reason}")
    if r.promoted or dry_run:
        return
    raise typer.Exit(EXIT_REJECTED if not r.gate_ok else EXIT_STALE)
