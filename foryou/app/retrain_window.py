"""A retrain on a time window of live traffic (`foryou retrain --since/--until`, `--last`): replay
the window's `served` and `engagements` topics, join them into a training log, then `retrain`
(train warm-started from the promoted ranker → gate on a held-out window → register → promote →
report). Rules: docs/OPERATIONS.md, "From a served feed to a promoted model".

The run's work directory is `<work_root>/<run id>` (`<data dir>/retrain/…` from the CLI): the
replays there resume when the same window is run again, and the whole directory is removed once a
version is registered. Only the two topics the join reads are replayed: the ranker trains on the
log alone (semantic ids come from `config.sids_path`), so `posts` is not needed."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from foryou.app.dataset import (
    DEFAULT_ATTRIBUTION_WINDOW_MS,
    DEFAULT_HISTORY_MS,
    DatasetSummary,
    build_dataset,
    write_history,
)
from foryou.app.replay import ReplayProgress, ReplaySummary, replay_topic
from foryou.app.retrain import GateRule, RetrainResult, retrain
from foryou.core.settings import Settings
from phoenix.log_dir import ENGAGEMENTS_FILE, HISTORY_FILE
from phoenix.registry import Registry

if TYPE_CHECKING:
    from phoenix.ranker.config import TrainConfig
    from phoenix.registry.ranker_window import ScoreWeights

LAST_PREFIX = "last-"  # run directories of `--last` windows: never resumed (the window moves)
RUN_LOCK = ".run.lock"


@dataclass(frozen=True, slots=True)
class RetrainWindow:
    """Served impressions in [since_ms, until_ms) train the candidate. The held-out window is
    [eval_since_ms, eval_until_ms) when given (the training window then ends at eval_since_ms if that
    is earlier), else the newest `eval_fraction` of the training impressions. Engagements are
    replayed to one attribution window past the last impression, so every label is complete; those
    of the `history_ms` before `since_ms` become the log's history context (history.parquet: the
    first requests' histories, as the serving action sequence has them; 0 = none)."""

    since_ms: int
    until_ms: int
    eval_since_ms: int | None = None
    eval_until_ms: int | None = None
    attribution_window_ms: int = DEFAULT_ATTRIBUTION_WINDOW_MS
    sliding: bool = False  # a `--last` window: its run directory is never resumed
    history_ms: int = DEFAULT_HISTORY_MS

    @classmethod
    def last(
        cls,
        duration_ms: int,
        now_ms: int,
        attribution_window_ms: int = DEFAULT_ATTRIBUTION_WINDOW_MS,
        eval_last_ms: int | None = None,
        history_ms: int = DEFAULT_HISTORY_MS,
    ) -> RetrainWindow:
        """The newest `duration_ms` of impressions whose labels are complete: the window ends one
        attribution window before `now_ms`. `eval_last_ms`: hold out its newest part by time."""
        until = now_ms - attribution_window_ms
        ev = until - eval_last_ms if eval_last_ms else None
        return cls(
            until - duration_ms,
            until,
            ev,
            until if ev is not None else None,
            attribution_window_ms,
            True,
            history_ms,
        )

    def __post_init__(self) -> None:
        if self.attribution_window_ms < 0:
            raise ValueError("the attribution window must be >= 0")
        if self.history_ms < 0:
            raise ValueError("the history look-back must be >= 0")
        if self.eval_until_ms is not None and self.eval_since_ms is None:
            raise ValueError("--eval-until needs --eval-since")
        if self.train_until_ms <= self.since_ms:
            raise ValueError(f"empty training window: [{_iso(self.since_ms)}, {_iso(self.train_until_ms)})")
        held = self.eval_range
        if held is not None and held[1] <= held[0]:
            raise ValueError(f"empty held-out window: [{_iso(held[0])}, {_iso(held[1])})")

    @property
    def train_until_ms(self) -> int:
        if self.eval_since_ms is None:
            return self.until_ms
        return min(self.until_ms, self.eval_since_ms)

    @property
    def eval_range(self) -> tuple[int, int] | None:
        """The held-out served window; None: the newest part of the training log."""
        if self.eval_since_ms is None:
            return None
        return self.eval_since_ms, self.eval_until_ms if self.eval_until_ms is not None else self.until_ms

    @property
    def end_ms(self) -> int:
        """The last served window's end."""
        held = self.eval_range
        return max(self.train_until_ms, held[1] if held else 0)

    @property
    def run_id(self) -> str:
        held = self.eval_range
        tail = f"-eval-{held[0]}-{held[1]}" if held else ""
        return f"{LAST_PREFIX if self.sliding else ''}{self.since_ms}-{self.train_until_ms}{tail}"


class StageReporter(Protocol):
    """What a windowed retrain tells as it goes (the CLI prints it; None: nothing)."""

    def stage(self, text: str) -> None: ...

    def replay(self, topic: str) -> AbstractContextManager[Callable[[ReplayProgress], None] | None]: ...


@dataclass
class WindowRunResult:
    window: RetrainWindow
    run_dir: Path
    retrain: RetrainResult
    replays: dict[str, ReplaySummary] = field(default_factory=dict)
    datasets: dict[str, DatasetSummary] = field(default_factory=dict)
    removed_work: bool = False


class _Quiet:
    def stage(self, text: str) -> None:
        pass

    def replay(self, topic: str) -> AbstractContextManager[Callable[[ReplayProgress], None] | None]:
        return contextlib.nullcontext(None)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """One process per run directory; an unlocked `last-` directory is a dead run's (removable)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / RUN_LOCK, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{run_dir}: another retrain of this window is running") from None
        yield


def remove_dead_sliding_runs(work_root: Path, keep: str) -> list[Path]:
    """`last-` run directories other than `keep` whose lock is free: interrupted `--last` runs,
    whose windows have moved on (an explicit window's directory stays: rerunning it resumes)."""
    removed: list[Path] = []
    if not work_root.is_dir():
        return removed
    for d in sorted(work_root.glob(f"{LAST_PREFIX}*")):
        if d.name == keep or not d.is_dir():
            continue
        with open(d / RUN_LOCK, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # running
            shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _window_info(s: ReplaySummary) -> dict[str, Any]:
    return {"since_ms": s.since_ms, "until_ms": s.until_ms, "records": s.rows, "malformed": s.malformed}


def _dataset_info(d: DatasetSummary) -> dict[str, Any]:
    keys = ("rows", "impressions", "positives", "served", "censored_impressions", "unattributed")
    return {k: getattr(d, k) for k in keys} | {"engagements_until_ms": d.engagements_until_ms}


def retrain_window(
    settings: Settings,
    window: RetrainWindow,
    registry: Registry | str | Path,
    *,
    work_root: str | Path | None = None,
    config: TrainConfig | None = None,
    rule: GateRule | None = None,
    weights: ScoreWeights | None = None,
    warm_start: bool = True,
    promote: bool = True,
    keep_work: bool = False,
    reporter: StageReporter | None = None,
    replay_timeout_s: float | None = None,
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> WindowRunResult:
    """Replay → join → `retrain` for `window`. `work_root` defaults to `<data dir>/retrain`. The run
    directory is removed once a version is registered (`keep_work`: kept); an interrupted or failed
    run keeps it, and running the same window again resumes its replays."""
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    say = reporter or _Quiet()
    root = Path(work_root) if work_root is not None else Path(settings.data_dir) / "retrain"
    run_dir = root / window.run_id
    held = window.eval_range
    attr_ms = window.attribution_window_ms
    steps = 5 + (held is not None) + (window.history_ms > 0)
    step = iter(range(1, steps + 1))
    replays: dict[str, ReplaySummary] = {}
    datasets: dict[str, DatasetSummary] = {}

    def replay(key: str, topic: str, since: int, until: int) -> None:
        out = run_dir / key.replace("_", "-")
        say.stage(f"[{next(step)}/{steps}] replay {topic} {_iso(since)} → {_iso(until)} into {out}")
        with say.replay(topic) as progress:
            s = replay_topic(
                settings, topic, since, until, out, progress=progress, timeout_s=replay_timeout_s
            )
        say.stage(
            f"      {s.rows:,} records ({s.added_rows:,} new, {s.malformed:,} malformed), {s.seconds:.1f} s"
        )
        replays[key] = s

    with _run_lock(run_dir):
        if window.sliding:
            for dead in remove_dead_sliding_runs(root, run_dir.name):
                say.stage(f"removed the work directory of an interrupted run: {dead}")
        replay("served", "served", window.since_ms, window.train_until_ms)
        if held is not None:
            replay("eval_served", "served", *held)
        # the engagement log is complete up to the end offsets its replay records: about now
        complete = min(window.end_ms + attr_ms, clock_ms())
        replay("engagements", "engagements", window.since_ms, window.end_ms + attr_ms)
        if window.history_ms > 0:
            replay("history", "engagements", window.since_ms - window.history_ms, window.since_ms)
        say.stage(
            f"[{next(step)}/{steps}] join served with engagements "
            f"(attribution window {attr_ms / 60_000:g} min)"
        )
        logs = {"dataset": run_dir / "log"} | ({"eval_dataset": run_dir / "eval-log"} if held else {})
        for key, log_dir in logs.items():
            served = replays["served" if key == "dataset" else "eval_served"].out_dir
            d = build_dataset(
                served,
                replays["engagements"].out_dir,
                log_dir / ENGAGEMENTS_FILE,
                attr_ms,
                engagements_until_ms=complete,
            )
            datasets[key] = d
            say.stage(
                f"      {log_dir.name}: {d.impressions:,} impressions, {d.positives:,} attributed actions, "
                f"{d.censored_impressions:,} censored (window still open), {d.unattributed:,} unattributed"
            )
            if key == "dataset" and "history" in replays:
                n = write_history(replays["history"].out_dir, log_dir / HISTORY_FILE)
                say.stage(f"      {log_dir.name}: {n:,} earlier engagement events as history context")
            if d.impressions == 0:
                which = "training" if key == "dataset" else "held-out"
                raise ValueError(
                    f"no impressions with complete labels in the {which} window: widen it, or run it "
                    "once an attribution window has passed after its end"
                )
        source = {
            "served": _window_info(replays["served"]),
            "eval_served": _window_info(replays["eval_served"]) if held else None,
            "engagements": _window_info(replays["engagements"]) | {"complete_before_ms": complete},
            "attribution_window_ms": attr_ms,
            "topics": {k: s.kafka_topic for k, s in replays.items()},
        } | {k: _dataset_info(d) for k, d in datasets.items()}
        say.stage(f"[{next(step)}/{steps}] retrain")
        r = retrain(
            logs["dataset"],
            reg,
            warm_start=warm_start,
            eval_logs=logs.get("eval_dataset"),
            config=config,
            rule=rule,
            weights=weights,
            promote=promote,
            work_dir=run_dir / "train",
            data_source=source,
            on_stage=lambda text: say.stage(f"      {text}"),
        )
        verdict = (
            "promoted" if r.promoted else ("gate passed, not promoted" if r.gate_ok else "gate rejected")
        )
        say.stage(f"[{next(step)}/{steps}] {r.version}: {verdict}; report {r.report}")
    result = WindowRunResult(window, run_dir, r, replays, datasets)
    if not keep_work:
        shutil.rmtree(run_dir, ignore_errors=True)
        result.removed_work = True
    return result
