"""`foryou simulate`: the world's users read the served feeds, engage as the ground truth says, and
the retraining loop learns from it; per round, how close the served feeds come to the best possible
feed (foryou.app.simulate, world.simulator; docs/simulator.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from foryou.app.cli.common import console, ctx_settings, fail
from foryou.app.cli.train import ListwiseWeight, UserDropout


def simulate(
    ctx: typer.Context,
    preset: Annotated[str, typer.Option(help="World size: demo | tiny")] = "demo",
    rounds: Annotated[int, typer.Option(help="Rounds of feeds")] = 30,
    users: Annotated[int, typer.Option(help="Users requesting a feed per round")] = 50,
    retrain_every: Annotated[int, typer.Option(help="Retrain after every this many rounds (0 = never)")] = 5,
    ranker_model: Annotated[
        str, typer.Option(help="Initial ranker checkpoint (e.g. the demo's); default: untrained (cold start)")
    ] = "",
    tiny_model: Annotated[bool, typer.Option(help="Tiny untrained ranker (smoke runs)")] = False,
    max_steps: Annotated[int, typer.Option(help="Cap on each retrain's steps, 0 = from the epochs")] = 0,
    epochs: Annotated[float, typer.Option(help="Ranking epochs of a retrain from scratch")] = 6.0,
    warm_epochs: Annotated[float, typer.Option(help="Ranking epochs of a warm-started retrain")] = 1.0,
    warm_lr_scale: Annotated[
        float, typer.Option(help="Learning rates of a warm-started retrain, x the from-scratch ones")
    ] = 0.01,
    cold_from_scratch: Annotated[
        bool, typer.Option(help="Cold start: each retrain from scratch on the whole window (else: continue)")
    ] = True,
    cold_epochs: Annotated[
        float, typer.Option(help="Cold start: ranking epochs of a retrain continuing the promoted model")
    ] = 3.0,
    listwise_weight: ListwiseWeight = 0.0,
    user_dropout: UserDropout = 0.5,
    horizon: Annotated[float, typer.Option(help="Minutes during which the world's new posts arrive")] = 15.0,
    threads: Annotated[int, typer.Option(help="torch threads of a retrain")] = 1,
    seed: Annotated[int, typer.Option(help="World and simulation seed")] = 0,
    active_users: Annotated[
        int, typer.Option(help="Sample each round's readers from this many returning users (0 = all)")
    ] = 0,
    out: Annotated[str, typer.Option(help="Output directory (default <data dir>/simulate/<run>)")] = "",
    params_file: Annotated[
        str,
        typer.Option(help="home_mixer params file (TOML: params, experiments, shadow; reloaded on change)"),
    ] = "",
    extra_rankers: Annotated[
        str,
        typer.Option(
            help="Comma-separated rankers (checkpoint dirs or 'untrained') to register, not promote, "
            "as ranker-0002, … for experiment buckets to pin"
        ),
    ] = "",
) -> None:
    """Closed-loop simulation: rounds of simulated users reading feeds, retraining every K rounds.

    Prints per round the served feeds' true mean P(favorite) / P(negative feedback), newest-first
    and best possible for the same users, the share of the gap closed and the model versions;
    writes rounds.parquet, feeds.parquet (per round and user) and lift.png."""
    from foryou.app.simulate import SimulateConfig, run_simulation
    from foryou.core.logs import setup_logging
    from world.reader import PositionBias
    from world.simulator import SimConfig

    if preset not in ("demo", "tiny"):
        fail(ValueError(f"unknown preset {preset!r} (demo | tiny)"))
    setup_logging("ERROR", json_lines=False)  # the rounds are the output; service warnings drown them
    config = SimulateConfig(
        preset=preset,
        sim=SimConfig(rounds, users, retrain_every, seed, PositionBias()),
        horizon_min=horizon,
        ranker_model=ranker_model,
        tiny_model=tiny_model,
        train_epochs=epochs,
        warm_epochs=warm_epochs,
        warm_lr_scale=warm_lr_scale,
        active_users=active_users,
        cold_from_scratch=cold_from_scratch,
        cold_epochs=cold_epochs,
        listwise_weight=listwise_weight,
        user_dropout=user_dropout,
        train_max_steps=max_steps,
        threads=threads,
        out_dir=out,
        params_file=params_file,
        extra_rankers=[r for r in extra_rankers.split(",") if r],
    )
    try:
        result, paths = run_simulation(
            ctx_settings(ctx), config, _print_round, lambda t: console.print(t, highlight=False)
        )
    except (ValueError, RuntimeError, OSError) as e:
        fail(e)
    console.print(
        f"gap closed over the last {min(3, rounds)} rounds: {result.gap_closed(3):.0%}  "
        f"(retrains {len(result.retrains)}, promoted {sum(r.promoted for r in result.retrains)})",
        highlight=False,
    )
    for name, path in paths.items():
        console.print(f"{name}: {path}", highlight=False)
    if params_file:
        console.print(
            f"per-bucket report: foryou experiment report --sim {paths['rounds'].parent}", highlight=False
        )


def _print_round(row: dict[str, Any]) -> None:
    if not row.get("feeds"):
        console.print(f"round {row['round']:>3}: no feeds ({row['empty_feeds']} empty)", highlight=False)
        return
    parts = [
        f"{label} {row[f'{k}_favorite']:.4f}/{row[f'{k}_negative']:.4f}"
        for k, label in (("served", "served"), ("newest", "newest"), ("best", "best"))
    ]
    console.print(
        f"round {row['round']:>3}: " + "  ".join(parts) + f"  gap closed {row['gap_closed']:>5.0%}  "
        f"model {row['model_versions']}  {row['engagements']} engagements, {row['new_posts']} new posts "
        f"({row['seconds']:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )
    if row.get("retrained"):
        verdict = "promoted" if row["promoted"] else "not promoted"
        console.print(
            f"  retrain → {row['retrained']}: {verdict} ({row['retrain_s']:.0f} s)", highlight=False
        )
