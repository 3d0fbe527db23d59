"""`foryou train …`: train the ranker and the retrieval model from an engagement log."""

from __future__ import annotations

from typing import Annotated

import typer

from foryou.app.cli.common import CheckpointDir, Logs, console, fail, group, print_metrics

app = group("Train models from an engagement log.")

MaxSteps = Annotated[int, typer.Option(help="0 = from epochs")]
Threads = Annotated[int, typer.Option(help="torch threads, 0 = torch default")]
Seed = Annotated[int, typer.Option()]
TrainSids = Annotated[
    str,
    typer.Option(help="Parquet with post_id + sid; default: the world directory's posts table"),
]

RETRIEVAL_PRESETS = ("default", "fast", "tiny")


@app.command("ranker")
def train_ranker_cmd(
    logs: Logs,
    out: Annotated[str, typer.Option(help="Checkpoint directory (resumes if it holds one)")],
    tiny: Annotated[bool, typer.Option(help="Tiny model (tests, smoke runs)")] = False,
    small: Annotated[bool, typer.Option(help="Small model (width 64, 2 layers)")] = False,
    epochs: Annotated[float, typer.Option(help="Ranking stage (all heads)")] = 2.0,
    exposure_epochs: Annotated[
        float, typer.Option(help="Exposure stage first (in-batch negatives only; docs/ranker.md)")
    ] = 1.0,
    max_steps: MaxSteps = 0,
    sids: TrainSids = "",
    in_batch_negatives: Annotated[
        bool, typer.Option("--in-batch-negatives", help="Add in-batch negatives in the ranking stage")
    ] = False,
    threads: Threads = 0,
    seed: Seed = 0,
) -> None:
    """Train the Phoenix ranker (multi-action, candidate-isolated transformer)."""
    from phoenix.ranker.config import RankerConfig, TrainConfig
    from phoenix.ranker.train import train_ranker

    if tiny and small:
        raise typer.BadParameter("--tiny and --small are exclusive")
    model = RankerConfig.tiny() if tiny else RankerConfig.small() if small else RankerConfig()
    cfg = TrainConfig(
        model=model,
        epochs=epochs,
        exposure_epochs=exposure_epochs,
        max_steps=max_steps,
        sids_path=sids,
        in_batch_negatives=in_batch_negatives,
        num_threads=threads,
        seed=seed,
    )
    try:
        metrics = train_ranker(logs, out, cfg)
    except (FileNotFoundError, ValueError) as e:
        fail(e)
    console.print(f"checkpoint, metrics.json and training curves in {out}")
    print_metrics("ranker", {k: v for k, v in metrics.items() if k != "history"})
    if metrics.get("sid_posts") == 0:
        console.print(
            "[yellow]warning:[/yellow] trained without post semantic ids (no --sids and no world "
            "posts table next to the log): new posts are known only by untrained id embeddings "
            "(docs/ranker.md, Semantic ids)"
        )


@app.command("retrieval")
def train_retrieval_cmd(
    logs: Logs,
    out: CheckpointDir,
    preset: Annotated[
        str, typer.Option(help="default | fast (~15 s on 1 core, demo world) | tiny")
    ] = "default",
    epochs: Annotated[float | None, typer.Option(help="Override the preset's epochs")] = None,
    max_steps: MaxSteps = 0,
    max_seconds: Annotated[float, typer.Option(help="Wall-clock cap on training, 0 = none")] = 0.0,
    threads: Threads = 0,
    sids: TrainSids = "",
    seed: Seed = 0,
) -> None:
    """Train the two-tower retrieval model (user tower = ranker trunk, candidate tower = hash MLP)."""
    from phoenix.retrieval.train import RetrievalTrainConfig, train_retrieval

    if preset not in RETRIEVAL_PRESETS:
        raise typer.BadParameter(f"preset must be one of {', '.join(RETRIEVAL_PRESETS)}")
    make = {
        "default": RetrievalTrainConfig,
        "fast": RetrievalTrainConfig.fast,
        "tiny": RetrievalTrainConfig.tiny,
    }
    overrides = dict(
        max_steps=max_steps, max_seconds=max_seconds, num_threads=threads, seed=seed, sids_path=sids
    )
    if epochs is not None:
        overrides["epochs"] = epochs
    metrics = train_retrieval(logs, out, make[preset](**overrides))
    console.print(f"checkpoint and metrics.json in {out}")
    print_metrics("retrieval", {k: v for k, v in metrics.items() if k != "config"})
