"""`foryou retrain`: train a ranker candidate, gate it against the promoted version, register it and
promote it when the gate holds (foryou.app.retrain; docs/OPERATIONS.md, "Model registry, gate and
rollback"). On a log (`--logs`), or on a window of live traffic (`--since/--until`, `--last`,
`--every`: foryou.app.retrain_window; "From a served feed to a promoted model").

Exit codes, so a scheduler can tell the outcomes apart: 0 promoted (or a dry run), 3 the gate
rejected the candidate (registered, not promoted), 4 the gate passed but another promotion happened
during the run (registered, not promoted: rerun to compare against it), 2 bad input, 130
interrupted. With `--every`: 0 once stopped by Ctrl-C / SIGTERM between runs."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from foryou.app.cli.common import (
    AsJson,
    ModelsRoot,
    console,
    fail,
    iso_ms,
    models_root,
    parse_duration_ms,
    parse_time_ms,
    show_table,
)
from foryou.app.cli.replay import TIME_HELP, ReplayBar, check_broker, kafka_settings

if TYPE_CHECKING:  # torch, polars, Kafka: imported inside the command (`foryou --help` stays fast)
    from foryou.app.replay import ReplayProgress
    from foryou.app.retrain import RetrainResult
    from foryou.app.retrain_window import RetrainWindow, WindowRunResult
    from phoenix.ranker.config import TrainConfig
    from phoenix.registry import Registry

EXIT_REJECTED = 3
EXIT_STALE = 4
EXIT_INTERRUPTED = 130


def retrain(
    ctx: typer.Context,
    logs: Annotated[
        str | None,
        typer.Option(help="Training log: a log directory or a log Parquet (or --since / --last: replay)"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help=f"Replay and train on served impressions from: {TIME_HELP}")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="…until (default: one attribution window ago, so every label is complete)"),
    ] = None,
    last: Annotated[
        str | None,
        typer.Option(help="Window of this length ending one attribution window ago (24h, 90m)"),
    ] = None,
    every: Annotated[
        str | None, typer.Option(help="With --last: run again every this long (1h) until Ctrl-C / SIGTERM")
    ] = None,
    eval_logs: Annotated[
        str | None,
        typer.Option(help="With --logs: a later log as the held-out window (default: the newest 15%)"),
    ] = None,
    eval_since: Annotated[
        str | None,
        typer.Option(help="With --since: held-out window start (inside the window: training ends there)"),
    ] = None,
    eval_until: Annotated[str | None, typer.Option(help="…held-out window end (default: --until)")] = None,
    eval_last: Annotated[
        str | None,
        typer.Option(help="With --since/--last: hold out the window's newest part of this length"),
    ] = None,
    attribution_window: Annotated[
        str, typer.Option(help="An engagement counts for the latest impression this long before it")
    ] = "30m",
    history: Annotated[
        str,
        typer.Option(
            help="Engagements this long before the window fill the first requests' histories "
            "(history context, never labels; 0 = none)"
        ),
    ] = "7d",
    keep_work: Annotated[
        bool, typer.Option(help="Keep the run's replays and logs (<data dir>/retrain/<run>)")
    ] = False,
    replay_timeout: Annotated[
        float, typer.Option(help="Give up a replay after this many seconds (0 = never)")
    ] = 0.0,
    connect_timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker to answer")] = 15.0,
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

    On a log (--logs), or on live traffic: --since/--until (or --last 24h, and --every 1h to keep
    going) replays `served` and `engagements`, joins them, and trains on the result.

    Exit codes: 0 promoted (or --dry-run), 3 the gate rejected the candidate, 4 the gate passed but
    another version was promoted during the run, 2 bad input. The candidate is registered in every
    case; its report.md explains the verdict."""
    from foryou.app.retrain import GateRule
    from foryou.app.retrain import retrain as run_retrain
    from phoenix.registry import Registry, RegistryError

    modes = [m for m, v in (("--logs", logs), ("--since", since), ("--last", last)) if v is not None]
    if len(modes) != 1:
        fail(ValueError("give exactly one of --logs DIR, --since TIME (with --until) and --last DURATION"))
    if tiny and small:
        fail(ValueError("--tiny and --small are exclusive"))
    misplaced = [
        flag
        for flag, value, allowed in (
            ("--until", until, since),
            ("--eval-since", eval_since, since),
            ("--eval-until", eval_until, since),
            ("--eval-logs", eval_logs, logs),
            ("--every", every, last),
            ("--eval-last", eval_last, since or last),
        )
        if value is not None and allowed is None
    ]
    if misplaced:
        fail(ValueError(f"{', '.join(misplaced)}: not with {modes[0]} (see `foryou retrain --help`)"))
    reg = Registry(models_root(ctx, models))
    try:
        rule = GateRule(auc_tolerance, min_positives, weighted_metric, weighted_tolerance)
        config = _train_config(reg, warm_start, tiny, small, max_steps, sids, threads)
    except (FileNotFoundError, ValueError, RegistryError) as e:
        fail(e)
    if logs is not None:
        try:
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
        _report(r, as_json)
        _exit(r, dry_run)
        return

    try:
        window_ms = parse_duration_ms(attribution_window)
        history_ms = parse_duration_ms(history) if history.strip() not in ("0", "none") else 0
        make_window = _window_factory(
            since, until, last, eval_since, eval_until, eval_last, window_ms, history_ms
        )
        make_window()  # bad times fail here, before anything runs
        every_s = parse_duration_ms(every) / 1000 if every else None
        settings = kafka_settings(ctx)
        check_broker(settings, connect_timeout)
    except (ValueError, RuntimeError) as e:
        fail(e)
    stages = _ConsoleStages(quiet=as_json)

    def run_once() -> WindowRunResult:
        from foryou.app.retrain_window import retrain_window

        return retrain_window(
            settings,
            make_window(),
            reg,
            config=config,
            rule=rule,
            warm_start=warm_start,
            promote=not dry_run,
            keep_work=keep_work,
            reporter=stages,
            replay_timeout_s=replay_timeout or None,
        )

    if every_s is None:
        out = _guarded(run_once, keep_going=False)
        assert out is not None  # _guarded exits on failure when not keeping going
        _report(out.retrain, as_json, out)
        _exit(out.retrain, dry_run)
        return
    _run_periodically(run_once, every_s, as_json)


def _train_config(
    reg: Registry, warm_start: bool, tiny: bool, small: bool, max_steps: int, sids: str, threads: int
) -> TrainConfig | None:
    """None: retrain's default (the promoted model's architecture; a warm start fine-tunes). With
    any model flag: that default adjusted (another architecture: the full schedule from scratch)."""
    import dataclasses

    from foryou.app.retrain import default_train_config
    from phoenix.ranker.config import RankerConfig, TrainConfig

    if not (tiny or small or max_steps or sids or threads):
        return None
    config = default_train_config(reg, reg.promoted("ranker"), warm_start)
    model = RankerConfig.tiny() if tiny else RankerConfig.small() if small else config.model
    if model != config.model:
        config = TrainConfig(model=model)
    config = dataclasses.replace(config, max_steps=max_steps, num_threads=threads)
    return dataclasses.replace(config, sids_path=sids) if sids else config


def _window_factory(
    since: str | None,
    until: str | None,
    last: str | None,
    eval_since: str | None,
    eval_until: str | None,
    eval_last: str | None,
    window_ms: int,
    history_ms: int,
) -> Callable[[], RetrainWindow]:
    """The window of a run, computed when the run starts (relative times such as `--last 24h` or
    `--since 2h` move with each `--every` run)."""
    from foryou.app.retrain_window import RetrainWindow

    def make() -> RetrainWindow:
        held_ms = parse_duration_ms(eval_last) if eval_last else None
        if last is not None:
            return RetrainWindow.last(
                parse_duration_ms(last), parse_time_ms("now"), window_ms, held_ms, history_ms
            )
        assert since is not None
        start = parse_time_ms(since)
        end = parse_time_ms(until) if until is not None else parse_time_ms("now") - window_ms
        ev_since = parse_time_ms(eval_since) if eval_since is not None else None
        ev_until = parse_time_ms(eval_until) if eval_until is not None else None
        if held_ms is not None:
            if ev_since is not None:
                raise ValueError("--eval-last and --eval-since are exclusive")
            ev_since, ev_until = end - held_ms, end
        return RetrainWindow(start, end, ev_since, ev_until, window_ms, history_ms=history_ms)

    return make


def _guarded(run: Callable[[], WindowRunResult], keep_going: bool) -> WindowRunResult | None:
    """One windowed run; a failure is one `error:` line, then exit 2 (or, keeping going, None)."""
    from confluent_kafka import KafkaException
    from rich.markup import escape

    try:
        return run()
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted:[/yellow] run the same window again to resume its replays "
            "(work directory kept under <data dir>/retrain)"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (ValueError, RuntimeError, KafkaException, OSError) as e:  # RegistryError: a RuntimeError
        if not keep_going:
            fail(e)
        # a scheduler keeps going: the next period may find the broker back or enough data
        console.print(f"[red]run failed:[/red] {escape(str(e))}", highlight=False)
        return None


def _run_periodically(run: Callable[[], WindowRunResult], every_s: float, as_json: bool) -> None:
    from foryou.app.periodic import run_every

    stop = threading.Event()

    def once() -> None:
        out = _guarded(run, keep_going=True)
        if out is not None:
            _report(out.retrain, as_json, out)

    def waiting(seconds: float) -> None:
        if not as_json:
            console.print(f"next run in {seconds / 60:.1f} min (Ctrl-C or SIGTERM stops)", highlight=False)

    with _stop_on_signals(stop):
        runs = run_every(once, every_s, stop, waiting)
    if not as_json:
        console.print(f"stopped after {runs} run(s)")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT / SIGTERM set `stop`: a wait ends at once, a run finishes first; a second signal
    during a run interrupts it (KeyboardInterrupt: its replays resume on a rerun)."""

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("stopping after the current run (signal again to interrupt it)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _ConsoleStages:
    """StageReporter on the console: one line per stage, a transient progress bar per replay."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def stage(self, text: str) -> None:
        if not self.quiet:
            console.print(text, markup=False, highlight=False)

    @contextmanager
    def replay(self, topic: str) -> Iterator[Callable[[ReplayProgress], None] | None]:
        with ReplayBar(topic, quiet=self.quiet) as bar:
            yield bar.update


def _summary(r: RetrainResult, run: WindowRunResult | None) -> dict[str, Any]:
    from foryou.app.retrain import result_summary

    out = result_summary(r)
    if run is not None:
        w = run.window
        out["window"] = {
            "since_ms": w.since_ms,
            "until_ms": w.train_until_ms,
            "eval": list(w.eval_range) if w.eval_range else None,
            "attribution_window_ms": w.attribution_window_ms,
            "history_ms": w.history_ms,
        }
        out["datasets"] = {
            k: {"impressions": d.impressions, "positives": d.positives} for k, d in run.datasets.items()
        }
        out["work_dir"] = None if run.removed_work else str(run.run_dir)
    return out


def _report(r: RetrainResult, as_json: bool, run: WindowRunResult | None = None) -> None:
    summary = _summary(r, run)
    if as_json:
        print(json.dumps(summary))  # plain print: machine-readable, never wrapped
        return
    verdict = (
        "[green]promoted[/green]"
        if r.promoted
        else ("gate passed" if r.gate_ok else "[red]gate rejected[/red]") + ", not promoted"
    )
    table = Table("", "", title=f"retrain {r.version}: {verdict}", show_header=False)
    table.columns[1].overflow = "fold"
    for k, v in summary.items():
        if k == "window" and v:
            v = f"{iso_ms(v['since_ms'])} → {iso_ms(v['until_ms'])}"
        if k not in ("reasons", "datasets"):
            table.add_row(k, "" if v is None else str(v))
    show_table(table)
    for reason in r.reasons:
        console.print(f"- {reason}")


def _exit(r: RetrainResult, dry_run: bool) -> None:
    if r.promoted or dry_run:
        return
    raise typer.Exit(EXIT_REJECTED if not r.gate_ok else EXIT_STALE)
