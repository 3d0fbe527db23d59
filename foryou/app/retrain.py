"""Retrain → evaluate → gate → register → promote (docs/OPERATIONS.md, "Model registry, gate and
rollback").

`retrain` trains a ranker candidate on a log directory (warm-started from the promoted version's
weights when the shapes match), scores the candidate and the promoted version on the same held-out
window, registers the candidate with its metrics and parent, promotes it only when `gate` holds,
and writes `report.md` (+ `comparison.png`) into the new version's folder. The gate's weighted score
uses the feed's weights (home_mixer's params), which phoenix cannot import: this app-layer module
hands them in."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phoenix.registry import Registry, RegistryError

if TYPE_CHECKING:  # torch-heavy: imported inside the functions so `foryou --help` stays fast
    from phoenix.ranker.config import TrainConfig
    from phoenix.registry.ranker_window import ScoreWeights

GATE_ACTIONS_NOTE = "actions with fewer positives in the window are reported, not gated"
WEIGHTED_METRICS = ("weighted_ndcg", "weighted_auc")


@dataclass(frozen=True, slots=True)
class GateRule:
    """A candidate passes when no gated action's ROC-AUC is more than `auc_tolerance` below the
    promoted model's, and its weighted-score metric is not more than `weighted_tolerance` below."""

    auc_tolerance: float = 0.005
    # an AUC from a few positives moves by ±0.05 between equally good models (SE ≈ 0.3/√positives)
    min_positives: int = 50
    weighted_metric: str = "weighted_ndcg"  # or "weighted_auc"
    weighted_tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.weighted_metric not in WEIGHTED_METRICS:
            raise ValueError(f"weighted_metric must be one of {WEIGHTED_METRICS}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class GateRow:
    metric: str
    positives: int | None
    candidate: float | None
    promoted: float | None
    gated: bool
    ok: bool
    reason: str = ""

    @property
    def delta(self) -> float | None:
        if self.candidate is None or self.promoted is None:
            return None
        return self.candidate - self.promoted


def gate_rows(cand: dict[str, Any], prom: dict[str, Any], rule: GateRule) -> list[GateRow]:
    """One row per compared metric: the weighted metric first, then every action's ROC-AUC."""
    rows: list[GateRow] = []
    for name in WEIGHTED_METRICS:
        c, p = cand.get(name), prom.get(name)
        gated = name == rule.weighted_metric and p is not None
        ok, reason = True, ""
        if gated and c is None:
            ok, reason = False, f"{name}: not computable for the candidate"
        elif gated and c is not None and p is not None and c < p - rule.weighted_tolerance:
            ok = False
            reason = (
                f"{name} {c:.4f} is {p - c:.4f} below the promoted model's {p:.4f} "
                f"(tolerance {rule.weighted_tolerance:g})"
            )
        rows.append(GateRow(name, cand.get("weighted_positives"), c, p, gated, ok, reason))
    c_auc, p_auc, pos = cand.get("auc", {}), prom.get("auc", {}), cand.get("positives", {})
    for action in sorted(set(c_auc) | set(p_auc), key=lambda a: -pos.get(a, 0)):
        c, p, n = c_auc.get(action), p_auc.get(action), pos.get(action)
        gated = c is not None and p is not None and (n or 0) >= rule.min_positives
        ok, reason = True, ""
        if gated and c < p - rule.auc_tolerance:
            ok = False
            reason = (
                f"{action} ROC-AUC {c:.4f} is {p - c:.4f} below the promoted model's {p:.4f} "
                f"(tolerance {rule.auc_tolerance:g}, {n} positives)"
            )
        rows.append(GateRow(f"{action} ROC-AUC", n, c, p, gated, ok, reason))
    return rows


def gate(
    candidate_metrics: dict[str, Any], promoted_metrics: dict[str, Any] | None, rule: GateRule | None = None
) -> tuple[bool, list[str]]:
    """(ok, reasons): the failed checks when not ok, a summary of what held when ok. Both metric
    dicts come from `phoenix.registry.ranker_window.score_checkpoint` on the same window."""
    rule = rule or GateRule()
    if promoted_metrics is None:
        return True, ["no promoted version: the first candidate is promoted without a comparison"]
    rows = gate_rows(candidate_metrics, promoted_metrics, rule)
    failed = [r.reason for r in rows if r.gated and not r.ok]
    if failed:
        return False, failed
    aucs = [r for r in rows if r.gated and r.metric.endswith("ROC-AUC")]
    w = next(r for r in rows if r.metric == rule.weighted_metric)
    return True, [
        f"{len(aucs)} action AUCs within {rule.auc_tolerance:g} of the promoted model's "
        f"(≥ {rule.min_positives} positives; {GATE_ACTIONS_NOTE})",
        f"{w.metric} {_fmt(w.candidate)} vs promoted {_fmt(w.promoted)} "
        f"(tolerance {rule.weighted_tolerance:g})",
    ]


def reference_weights() -> ScoreWeights:
    """home_mixer's weighted-scorer weights as phoenix `ScoreWeights`. VQV and post_unexplored are
    left out: the scorer applies them only to long videos / in-network posts, which a log does not say."""
    from home_mixer.params import ACTION_HEADS, Params
    from phoenix.registry.ranker_window import ScoreWeights

    p = Params()
    skip = {"vqv", "post_unexplored"}
    actions = {ACTION_HEADS[h]: w for h, w in p.weights().items() if h not in skip and w != 0.0}
    return ScoreWeights(actions, p.cont_dwell_time_weight)


def default_train_config(registry: Registry, parent: str | None, warm: bool) -> TrainConfig:
    """No config given: the promoted model's architecture (so its weights fit), else the default
    one. A warm start fine-tunes 1 ranking epoch and skips the exposure stage, which the promoted
    model has been through."""
    from phoenix.ranker.checkpoint import read_config
    from phoenix.ranker.config import RankerConfig, TrainConfig

    model = RankerConfig.from_dict(read_config(registry.path(parent))["model"]) if parent else RankerConfig()
    if warm and parent:
        return TrainConfig(model=model, exposure_epochs=0.0, epochs=1.0)
    return TrainConfig(model=model)


@dataclass
class RetrainResult:
    version: str
    promoted: bool
    gate_ok: bool
    reasons: list[str]
    parent: str | None  # the version promoted when the run started (compared against)
    warm_started_from: str | None
    candidate_metrics: dict[str, Any]
    promoted_metrics: dict[str, Any] | None
    data_window: dict[str, Any]
    report: Path
    train: dict[str, Any] = field(default_factory=dict)


def retrain(
    logs_dir: str | Path,
    registry: Registry | str | Path,
    kind: str = "ranker",
    warm_start: bool = True,
    eval_logs: str | Path | None = None,
    *,
    config: TrainConfig | None = None,
    rule: GateRule | None = None,
    weights: ScoreWeights | None = None,
    promote: bool = True,
    work_dir: str | Path | None = None,
) -> RetrainResult:
    """Train a candidate on `logs_dir`, compare it with the promoted version on the held-out window
    (the newest `config.eval_fraction` of `logs_dir`, or all of the later `eval_logs`), register it
    and promote it when the gate holds (`promote=False`: never promote, a dry run that still
    registers and reports). `config`: a phoenix `TrainConfig` (default: `default_train_config`);
    `weights`: phoenix `ScoreWeights` (default: `reference_weights()`)."""
    from phoenix.ranker.train import train_ranker
    from phoenix.registry.ranker_warm import prepare_warm_start
    from phoenix.registry.ranker_window import build_window, score_checkpoint

    if kind != "ranker":
        raise ValueError(f"retrain supports kind='ranker' (got {kind!r}); register other kinds directly")
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    rule = rule or GateRule()
    weights = weights or reference_weights()
    parent = reg.promoted(kind)
    parent_dir = reg.path(parent) if parent else None
    cfg = config or default_train_config(reg, parent, warm_start)
    window = build_window(
        logs_dir, eval_logs, cfg.eval_fraction, cfg.sids_path, cfg.max_candidates, cfg.session_gap_ms
    )
    if eval_logs is not None:
        cfg = dataclasses.replace(cfg, eval_fraction=0.0)  # the held-out window is eval_logs: train on all
    work_root = Path(work_dir) if work_dir is not None else reg.root / ".work"
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"retrain-{kind}-", dir=work_root))
    try:
        ckpt = work / "checkpoint"
        warm_from = None
        if warm_start and parent_dir is not None and prepare_warm_start(ckpt, parent_dir, cfg):
            warm_from = parent
        t0 = time.monotonic()
        trained = train_ranker(logs_dir, ckpt, cfg, evaluate=False)
        train_info = {
            "steps": trained["steps"],
            "train_s": trained["train_s"],
            "wall_s": round(time.monotonic() - t0, 2),
            "final_train_loss_ema": trained["final_train_loss_ema"],
            "config": cfg.to_dict(),
        }
        cand = score_checkpoint(ckpt, window, weights)
        prom = score_checkpoint(parent_dir, window, weights) if parent_dir is not None else None
        ok, reasons = gate(cand, prom, rule)
        extra = {
            "gate": {"ok": ok, "reasons": reasons, "against": parent, "rule": rule.to_dict()},
            "warm_started_from": warm_from,
            "promoted_metrics": prom,
            "train": train_info,
        }
        version = reg.register(kind, ckpt, cand, window.description, parent, extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    promoted = False
    if ok and promote:
        try:
            reg.promote(kind, version, expect=parent, note="retrain: gate passed")
            promoted = True
        except RegistryError as e:  # someone promoted meanwhile: our comparison is stale
            reasons = [*reasons, f"not promoted: {e}"]
    elif ok:
        reasons = [*reasons, "gate passed; not promoted (promote=False)"]
    result = RetrainResult(
        version, promoted, ok, reasons, parent, warm_from, cand, prom, window.description, Path(), train_info
    )
    result.report = write_report(reg.path(version), result, rule)
    return result


def result_summary(r: RetrainResult) -> dict[str, Any]:
    """What the CLI prints."""
    return {
        "version": r.version,
        "promoted": r.promoted,
        "gate_ok": r.gate_ok,
        "reasons": r.reasons,
        "parent": r.parent,
        "warm_started_from": r.warm_started_from,
        "report": str(r.report),
    }


# --- the report ---


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return ""
    return f"{v:+.4f}" if signed else f"{v:.4f}"


def _ms(v: Any) -> str:
    if v is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(v) / 1000)) + " UTC"


def write_report(version_dir: Path, r: RetrainResult, rule: GateRule) -> Path:
    """report.md (status, gate reasons, comparison table, data window, training) and
    comparison.png into the version's folder; the training curves are already there."""
    rows = gate_rows(r.candidate_metrics, r.promoted_metrics or {}, rule)
    status = "promoted" if r.promoted else "NOT promoted"
    w = r.data_window
    t = r.train
    warm = f"from `{r.warm_started_from}`" if r.warm_started_from else "none (from scratch)"
    lines = [
        f"# Retrain {r.version}: {status}",
        "",
        f"- candidate: `{r.version}` (model_version `{r.candidate_metrics.get('model_version')}`)",
        f"- compared against: `{r.parent}`"
        + (f" (model_version `{r.promoted_metrics.get('model_version')}`)" if r.promoted_metrics else ""),
        f"- warm start: {warm}",
        f"- training: {t.get('steps')} steps, {t.get('wall_s')} s, final loss EMA "
        f"{_fmt(t.get('final_train_loss_ema'))}",
        f"- logs: `{w.get('logs')}`" + (f", eval logs `{w['eval_logs']}`" if w.get("eval_logs") else ""),
        f"- training window: {_ms(w.get('train_start_ms'))} → {_ms(w.get('train_end_ms'))} "
        f"({w.get('train_impressions')} impressions)",
        f"- held-out window: {_ms(w.get('eval_start_ms'))} → {_ms(w.get('eval_end_ms'))} "
        f"({r.candidate_metrics.get('eval_impressions')} impressions, "
        f"{r.candidate_metrics.get('eval_requests')} requests)",
        f"- gate rule: no action's ROC-AUC more than {rule.auc_tolerance:g} below the promoted model's "
        f"(actions with ≥ {rule.min_positives} positives), {rule.weighted_metric} not more than "
        f"{rule.weighted_tolerance:g} below",
        "",
        "## Gate: " + ("passed" if r.gate_ok else "FAILED"),
        "",
        *[f"- {reason}" for reason in r.reasons],
        "",
        "## Comparison on the held-out window",
        "",
        "| metric | positives | candidate | promoted | Δ | gated | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        result = ("ok" if row.ok else "**FAIL**") if row.gated else ""
        lines.append(
            f"| {row.metric} | {'' if row.positives is None else row.positives} | {_fmt(row.candidate)} | "
            f"{_fmt(row.promoted)} | {_fmt(row.delta, signed=True)} | {'yes' if row.gated else 'no'} | "
            f"{result} |"
        )
    lines.append("")
    if _plot_comparison(version_dir / "comparison.png", rows):
        lines += ["![candidate vs promoted](comparison.png)", ""]
    if (version_dir / "training_curves.png").exists():
        lines += ["## Training", "", "![training curves](training_curves.png)", ""]
    path = version_dir / "report.md"
    path.write_text("\n".join(lines))
    (version_dir / "retrain.json").write_text(
        json.dumps(
            {**result_summary(r), "rows": [dataclasses.asdict(x) for x in rows]}, indent=2, default=float
        )
    )
    return path


def _plot_comparison(path: Path, rows: list[GateRow]) -> bool:
    """Candidate vs promoted per metric (bars); False when there is nothing to compare."""
    shown = [x for x in rows if x.candidate is not None]
    if not shown:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(shown))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(shown)), 4))
    for dx, label, vals in (
        (-0.2, "candidate", [r.candidate for r in shown]),
        (0.2, "promoted", [r.promoted for r in shown]),
    ):
        ax.bar(x + dx, [np.nan if v is None else v for v in vals], 0.4, label=label)
    for i, r in enumerate(shown):
        if r.gated and not r.ok:
            ax.annotate("✗", (i - 0.2, r.candidate or 0.0), ha="center", va="bottom", color="red")
    labels = [
        r.metric.replace(" ROC-AUC", "").replace("CLIENT_TWEET_", "").replace("SERVER_TWEET_", "")
        for r in shown
    ]
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    low = min(v for r in shown for v in (r.candidate, r.promoted) if v is not None)
    ax.set_ylim(min(0.4, low) - 0.05, 1.0)
    ax.set_ylabel("held-out metric")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
