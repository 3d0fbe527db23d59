"""`foryou simulate`: the closed loop on the whole system (docs/simulator.md).

1. start the embedded Kafka broker and Redis (unless external ones are configured);
2. generate the world with its `now` at the end of the run (`horizon`), and publish what had
   happened by the start (world.arrivals.past) through the ingesters and Thunder;
3. register the initial ranker (untrained: a cold start, or a given checkpoint, e.g. the demo's)
   in a registry of the run's own and promote it; start the stack (retrieval off) with its ranker
   following the registry;
4. run the simulator (world.simulator): rounds of users reading feeds and engaging, the world's new
   posts arriving, and every K rounds `retrain_window` (replay → join → train → gate → promote) on
   everything served since the start;
5. write rounds.parquet, feeds.parquet and lift.png in the run's directory, and the run's served ⨝
   engagements log (`experiment-log/`, what `foryou experiment report` reads).

With `params_file`, home_mixer serves that params file (experiments, shadow scoring) and reloads
it when it changes; `extra_rankers` are registered (not promoted) after the initial ranker, as
ranker-0002, … for buckets to pin ("untrained" = a fresh untrained model)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from foryou.app import infra
from foryou.app.retrain import WARM_LR_SCALE
from foryou.core.settings import Settings
from world.simulator import RetrainOutcome, SimConfig, SimResult

MINUTE_MS = 60_000


@dataclass(slots=True)
class SimulateConfig:
    preset: str = "demo"  # world size: demo | tiny
    sim: SimConfig = field(default_factory=SimConfig)
    horizon_min: float = 15.0  # the world's posts keep being created for this long after the start
    # users who come back (a seeded subset of those who follow someone; 0 = all of them): each
    # round samples its readers from these, so a user's earlier sessions are in the training log
    active_users: int = 0
    ranker_model: str = ""  # initial ranker checkpoint; "" = untrained (a cold start)
    tiny_model: bool = False  # the untrained ranker's architecture: tiny (tests) or small
    # a round's log is small (~10 impressions per feed): small batches and several epochs give a
    # retrain enough steps to learn from it
    train_epochs: float = 6.0  # ranking epochs of a retrain from scratch (every one of a cold start)
    # ranking epochs of a retrain warm-started from the promoted version (a given checkpoint's
    # lineage), at `warm_lr_scale` of the learning rates (foryou.app.retrain.fine_tune_config)
    warm_epochs: float = 1.0
    warm_lr_scale: float = WARM_LR_SCALE  # of the learning rates, for a warm-started retrain
    # a cold start's later retrains: ranking epochs continuing the promoted model at the full rates
    cold_epochs: float = 3.0
    # …or (the default) the full schedule from scratch on the whole window: with the history
    # context and user-id dropout it reached 51–56% of the gap, continuing 38–43% (docs/simulator.md)
    cold_from_scratch: bool = True
    batch_size: int = 8  # requests (a user's impressions in one session) per step
    listwise_weight: float = 0.0  # TrainConfig.listwise_weight of every retrain
    # TrainConfig.user_dropout of every retrain: a user reads in few rounds, so the user-id row
    # learns little from the window; hiding it in half the requests makes the model read the
    # history, which carries over to every user (docs/simulator.md: offline 0.47 -> 0.53 rank
    # correlation with the true P(favorite)); cold starts only
    user_dropout: float = 0.5
    train_max_steps: int = 0  # cap on a retrain's steps (0 = from the epochs)
    threads: int = 1  # torch threads of a retrain (the services keep the other core)
    attribution_window_ms: int = 5 * MINUTE_MS
    follow_poll_s: float = 0.5  # how often the ranker looks for a new promotion
    out_dir: str = ""  # "" = <data dir>/simulate/<start>-<time>
    params_file: str = ""  # home_mixer's params file (experiments); "" = the default params
    extra_rankers: list[str] = field(default_factory=list)  # checkpoint dirs or "untrained"
    experiment_log: bool = True  # write the run's served ⨝ engagements log to <out>/experiment-log


def run_simulation(
    settings: Settings,
    config: SimulateConfig,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    say: Callable[[str], None] = lambda _text: None,
) -> tuple[SimResult, dict[str, Path]]:
    """The simulation on embedded infra (or the configured one); (result, output paths)."""
    external = bool(settings.kafka_bootstrap and settings.redis_url)
    state = infra.up(settings)
    settings = settings.replace(kafka_bootstrap=state.kafka_bootstrap, redis_url=state.redis_url)
    if not external:
        infra.clear_user_state(settings)  # the embedded broker starts empty: Redis too
    try:
        return asyncio.run(_simulate(settings, config, on_round, say))
    finally:
        if not external:
            infra.down(settings)


def _out_dir(settings: Settings, config: SimulateConfig) -> Path:
    if config.out_dir:
        return Path(config.out_dir)
    kind = "warm" if config.ranker_model else "cold"
    return Path(settings.data_dir) / "simulate" / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


async def _simulate(
    settings: Settings,
    config: SimulateConfig,
    on_round: Callable[[dict[str, Any]], None] | None,
    say: Callable[[str], None],
) -> tuple[SimResult, dict[str, Path]]:
    from foryou.app.stack import Stack, StackConfig
    from foryou.core.kafka import make_producer
    from home_mixer.service import HomeMixerConfig
    from phoenix.registry import Registry, follow_promoted
    from world import WorldConfig, generate_world
    from world.arrivals import PostArrivals, past
    from world.ground_truth import GroundTruth
    from world.publish import publish_world
    from world.simulator import Simulator, write_outputs

    out = _out_dir(settings, config)
    out.mkdir(parents=True, exist_ok=True)
    t0 = int(time.time() * 1000)
    horizon = int(config.horizon_min * MINUTE_MS)
    # the world's "now" is the end of the run: its newest posts are created during the run
    wcfg = getattr(WorldConfig, config.preset)(seed=config.sim.seed)
    world = generate_world(wcfg.replace(now_ms=t0 + horizon + int(wcfg.min_post_age_min * MINUTE_MS)))
    world_dir = world.save(out / "world")
    before = past(world, t0)
    arriving = world.posts.height - before.posts.height
    say(
        f"world {world.posts.height:,} posts ({arriving:,} created during the run), "
        f"{world.users.height:,} users"
    )

    reg = Registry(out / "models")
    initial = await asyncio.to_thread(_register_initial, reg, config, out)
    say(f"ranker {initial} promoted ({'given checkpoint' if config.ranker_model else 'untrained'})")
    for src in config.extra_rankers:
        v = await asyncio.to_thread(_register_extra, reg, src, config.sim.seed, config.tiny_model, out)
        say(f"ranker {v} registered, not promoted ({src})")
    sids = str(world_dir / "posts.parquet")
    hm = HomeMixerConfig(params_file=config.params_file, params_poll_s=1.0)
    stack = Stack(settings, StackConfig(ranker_dir=str(reg.path(initial)), sids_path=sids, home_mixer=hm))
    producer = make_producer(settings)
    follower = None
    try:
        await stack.start_ingestion()
        stats = await asyncio.to_thread(publish_world, before, settings, None, False)
        await stack.wait_caught_up()
        say(f"published {stats.total:,} events of the world before the start; Thunder caught up")
        await stack.start_serving()
        follower = await asyncio.to_thread(
            follow_promoted, reg, "ranker", stack.ranking, config.follow_poll_s, initial
        )
        followers = before.follows.filter(pl.col("kind") == "follow")["user_id"].unique().sort().to_list()
        if 0 < config.active_users < len(followers):
            # the service's returning users: each round samples from this seeded subset
            rng = np.random.default_rng([config.sim.seed, 1])
            followers = sorted(rng.choice(followers, config.active_users, replace=False).tolist())
        sim = Simulator(
            settings,
            stack.addresses["home_mixer"],
            GroundTruth(world_dir),
            followers,
            config.sim,
            arrivals=PostArrivals(world, t0, settings, producer),
            producer=producer,
            retrain=_retrain_step(settings, config, reg, initial, stack, sids, out),
            on_round=on_round,
        )
        result = await sim.run()
    finally:
        if follower is not None:
            await asyncio.to_thread(follower.stop)
        await stack.stop()
        producer.flush(10)
    title = f"{config.preset} world, {'from ' + initial if config.ranker_model else 'cold start'}"
    paths = write_outputs(result, out, title)
    if config.experiment_log:
        end_ms = int(time.time() * 1000)
        say("writing the run's served ⨝ engagements log (experiment-log/)")
        paths["experiment_log"] = await asyncio.to_thread(
            write_experiment_log, settings, result.start_ms, end_ms, config.attribution_window_ms, out
        )
    (out / "versions.json").write_text(json.dumps(version_names(reg), indent=2))
    return result, paths


def write_experiment_log(settings: Settings, since_ms: int, until_ms: int, window_ms: int, out: Path) -> Path:
    """Replay the run's `served` and `engagements` and join them (foryou.app.dataset) into
    <out>/experiment-log/engagements.parquet. Every engagement was logged before `until_ms`, so
    the log is complete: nothing is censored."""
    from foryou.app.dataset import build_dataset
    from foryou.app.replay import replay_topic
    from phoenix.log_dir import ENGAGEMENTS_FILE

    work = out / "experiment-log"
    for topic in ("served", "engagements"):
        replay_topic(settings, topic, since_ms, until_ms, work / f"replay-{topic}")
    path = work / ENGAGEMENTS_FILE
    build_dataset(
        work / "replay-served",
        work / "replay-engagements",
        path,
        window_ms,
        engagements_until_ms=until_ms + window_ms + 1,
    )
    return path


def _register_extra(reg: Any, src: str, seed: int, tiny: bool, out: Path) -> str:
    """Register (not promote) another ranker: a checkpoint directory, or "untrained"."""
    path = Path(src)
    if src == "untrained":
        import torch

        from phoenix.ranker.checkpoint import save_model
        from phoenix.ranker.config import RankerConfig
        from phoenix.ranker.model import RankerModel

        torch.manual_seed(seed + 1)
        path = out / f"untrained-extra-{len(reg.list('ranker'))}"
        save_model(path, RankerModel(RankerConfig.tiny() if tiny else RankerConfig.small()))
    return str(reg.register("ranker", path, extra={"simulate": f"extra: {src}"}))


def version_names(reg: Any) -> dict[str, str]:
    """model_version (what a served feed names) -> registry version."""
    return {m["model_version"]: m["version"] for m in reg.list("ranker")}


def _register_initial(reg: Any, config: SimulateConfig, out: Path) -> str:
    """Register and promote the initial ranker: the given checkpoint, or an untrained one."""
    src = Path(config.ranker_model) if config.ranker_model else out / "untrained"
    extra = {"simulate": "initial"}
    if not config.ranker_model:
        import torch

        from phoenix.ranker.checkpoint import save_model
        from phoenix.ranker.config import RankerConfig
        from phoenix.ranker.model import RankerModel

        torch.manual_seed(config.sim.seed)
        model = RankerModel(RankerConfig.tiny() if config.tiny_model else RankerConfig.small())
        save_model(src, model)
        extra["simulate"] = "untrained"
    version = reg.register("ranker", src, extra=extra)
    reg.promote("ranker", version, note="simulate: initial ranker")
    return version


def _retrain_step(
    settings: Settings,
    config: SimulateConfig,
    reg: Any,
    initial: str,
    stack: Any,
    sids: str,
    out: Path,
) -> Callable[[int, int], RetrainOutcome]:
    """The simulator's retrain step: `retrain_window` on [since, until), then wait until the
    running ranker serves what is promoted."""
    from foryou.app.retrain import GateRule, fine_tune_config
    from foryou.app.retrain_window import RetrainWindow, retrain_window
    from phoenix.ranker.checkpoint import read_config
    from phoenix.ranker.config import RankerConfig, TrainConfig

    model = RankerConfig.from_dict(read_config(reg.path(initial))["model"])
    attr = config.attribution_window_ms

    def step(since_ms: int, until_ms: int) -> RetrainOutcome:
        t0 = time.monotonic()
        # the served records of the last request are in the producer's buffer at most
        stack.home_mixer.producer.flush(30)
        # From a given checkpoint (trained on far more than the window holds) a retrain fine-tunes
        # the promoted model at `warm_lr_scale` of the learning rates. A cold start has nothing to
        # keep: its first retrain runs the full schedule from scratch (exposure stage included),
        # later ones continue training the promoted model at the full rates (`cold_epochs`), or,
        # with `cold_from_scratch`, run the full schedule from scratch on the whole window again
        # (which holds everything the earlier versions learnt from).
        given = bool(config.ranker_model)
        warm = given or (reg.promoted("ranker") != initial and not config.cold_from_scratch)
        tcfg = TrainConfig(
            model=model,
            seed=config.sim.seed,
            epochs=config.train_epochs,
            batch_size=config.batch_size,
            listwise_weight=config.listwise_weight,
            # a cold start's retrains only: a given checkpoint's fine-tune keeps its own training
            user_dropout=0.0 if given else config.user_dropout,
            exposure_epochs=1.0,
            max_steps=config.train_max_steps,
            num_threads=config.threads,
            sids_path=sids,
            eval_every=0,
            progress=False,
        )
        if warm:
            tcfg = fine_tune_config(
                tcfg,
                config.warm_epochs if given else config.cold_epochs,
                config.warm_lr_scale if given else 1.0,
            )
        r = retrain_window(
            settings,
            RetrainWindow(since_ms, until_ms, attribution_window_ms=attr),
            reg,
            work_root=out / "retrain",
            config=tcfg,
            rule=GateRule(),
            warm_start=warm,
            # every engagement of the window was logged before this step: the log is complete
            clock_ms=lambda: until_ms + attr,
        )
        target = reg.show(reg.promoted("ranker"))["model_version"]
        deadline = time.monotonic() + 60
        while stack.ranking.model_version != target and time.monotonic() < deadline:
            time.sleep(0.1)
        d = r.datasets.get("dataset")
        detail: dict[str, Any] = {
            "impressions": d.impressions if d else 0,
            "positives": d.positives if d else 0,
        }
        detail |= {"reasons": r.retrain.reasons, "warm_started_from": r.retrain.warm_started_from}
        return RetrainOutcome(
            r.retrain.version, r.retrain.promoted, stack.ranking.model_version, time.monotonic() - t0, detail
        )

    return step
