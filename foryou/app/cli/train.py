"""`foryou train …`: train the ranker and the retrieval model from an engagement log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from foryou.app.cli.common import CheckpointDir, Logs, console, fail, group, print_metrics

if TYPE_CHECKING:  # heavy: imported inside the commands
    import torch

app = group("Train models from an engagement log.")

MaxSteps = Annotated[int, typer.Option(help="0 = from epochs")]
Threads = Annotated[int, typer.Option(help="torch threads, 0 = torch default")]
Seed = Annotated[int, typer.Option()]
ListwiseWeight = Annotated[
    float, typer.Option(help="Weight of the listwise softmax loss over a request's candidates")
]
UserDropout = Annotated[
    float, typer.Option(help="Share of training requests with the user id hidden (it reads the history)")
]
TrainSids = Annotated[
    str,
    typer.Option(help="Parquet with post_id + sid; default: the world directory's posts table"),
]

RETRIEVAL_PRESETS = ("default", "fast", "tiny")
DeviceOpt = Annotated[str, typer.Option(help="cpu | cuda | cuda:N | auto (docs/SCALING.md)")]
HoldoutOpt = Annotated[
    str,
    typer.Option(help="Held-out split: time:FRACTION (newest by time) | last:N (per user) | none"),
]


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
    holdout: HoldoutOpt = "time:0.15",
    negatives: Annotated[
        int,
        typer.Option(help="Sampled negatives per request; -1 = auto (16 on a positives-only log, else 0)"),
    ] = -1,
    negative_distribution: Annotated[
        str,
        typer.Option(
            help="uniform | popularity | hard (retrieval's top posts, --negatives-from) | "
            "recent (half time-matched, docs/ranker.md)"
        ),
    ] = "popularity",
    negatives_from: Annotated[str, typer.Option(help="Retrieval checkpoint for hard negatives")] = "",
    listwise_weight: ListwiseWeight = 0.0,
    user_dropout: UserDropout = 0.0,
    threads: Threads = 0,
    seed: Seed = 0,
    device: DeviceOpt = "cpu",
) -> None:
    """Train the Phoenix ranker (multi-action, candidate-isolated transformer)."""
    dev = _training_device(device)
    from phoenix.ranker.config import RankerConfig, TrainConfig
    from phoenix.ranker.train import train_ranker
    from phoenix.retrieval.hard_negatives import mine_hard_negatives

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
        holdout=str(_holdout(holdout)),
        negatives=negatives,
        negative_distribution=negative_distribution,
        negatives_from=negatives_from,
        listwise_weight=listwise_weight,
        user_dropout=user_dropout,
        num_threads=threads,
        seed=seed,
    )
    try:
        metrics = train_ranker(logs, out, cfg, hard_miner=mine_hard_negatives, device=dev)
    except (FileNotFoundError, ValueError) as e:
        fail(e)
    console.print(f"checkpoint, metrics.json and training curves in {out}")
    print_metrics("ranker", {k: v for k, v in metrics.items() if k != "history"}, f"{out}/metrics.json")
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
    holdout: HoldoutOpt = "time:0.15",
    pooling: Annotated[
        str, typer.Option(help="User-tower pooling: mean | last (newest history item) | mean_last")
    ] = "mean",
    patience: Annotated[
        int,
        typer.Option(
            help="Early stopping: stop after N epochs without a better held-out recall@100 and keep "
            "the best epoch; -1 = off"
        ),
    ] = -1,
    seed: Seed = 0,
    device: DeviceOpt = "cpu",
) -> None:
    """Train the two-tower retrieval model (user tower = ranker trunk, candidate tower = hash MLP)."""
    dev = _training_device(device)
    from phoenix.retrieval.train import RetrievalTrainConfig, train_retrieval

    if preset not in RETRIEVAL_PRESETS:
        raise typer.BadParameter(f"preset must be one of {', '.join(RETRIEVAL_PRESETS)}")
    make = {
        "default": RetrievalTrainConfig,
        "fast": RetrievalTrainConfig.fast,
        "tiny": RetrievalTrainConfig.tiny,
    }
    overrides: dict[str, object] = dict(
        max_steps=max_steps,
        max_seconds=max_seconds,
        num_threads=threads,
        seed=seed,
        sids_path=sids,
        holdout=str(_holdout(holdout)),
        patience=patience,
    )
    if epochs is not None:
        overrides["epochs"] = epochs
    if pooling not in ("mean", "last", "mean_last"):
        raise typer.BadParameter("pooling must be mean, last or mean_last")
    cfg = make[preset](**overrides)
    cfg.model.pooling = pooling
    try:
        metrics = train_retrieval(logs, out, cfg, device=dev)
    except (FileNotFoundError, ValueError) as e:
        fail(e)
    console.print(f"checkpoint and metrics.json in {out}")
    print_metrics("retrieval", {k: v for k, v in metrics.items() if k != "config"}, f"{out}/metrics.json")


def _training_device(spec: str) -> torch.device:
    """Resolve `--device` (a one-line error when CUDA is asked for and missing) and say which
    device trains: the trainers move the model, its optimiser state and each batch there
    (batches are built on the CPU; docs/SCALING.md "GPU")."""
    from phoenix.device import DeviceError, describe, resolve_device

    try:
        dev = resolve_device(spec)
    except DeviceError as e:
        fail(e)
    console.print(f"device: {describe(dev)}")
    return dev


def _holdout(spec: str) -> object:
    from phoenix.holdout import Holdout

    try:
        return Holdout.parse(spec)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
