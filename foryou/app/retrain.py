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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phoenix.registry import Registry, RegistryError

if TYPE_CHECKING:  # torch-heavy: imported inside the functions so `foryou --help` stays fast
    from phoenix.ranker.config import TrainConfig
    from phoenix.registry.ranker_window import ScoreWeights

GATE_ACTIONS_NOTE = "actions with fewer positives in the window are reported, not gated"
WEIGHTED_METRICS = ("weighted_ndcg", "weighted_auc", "weighted_ndcg_neg")


@dataclass(frozen=True, slots=True)
class GateRule:
    """A candidate passes when no gated action's ROC-AUC is more than `auc_tolerance` below the
    promoted model's, its weighted-score metric (and each of `also_gated` both models have) is
    not more than `weighted_tolerance` below, and the held-out window holds at least
    `min_weighted_positives` impressions of positive value (less evidence: not promoted)."""

    auc_tolerance: float = 0.005
    # an AUC from a few positives moves by ±0.05 between equally good models (SE ≈ 0.3/√positives)
    min_positives: int = 50
    weighted_metric: str = "weighted_ndcg"  # or "weighted_auc", "weighted_ndcg_neg"
    weighted_tolerance: float = 0.0
    # weighted NDCG with another user's impressions as unserved negatives: the only metric that
    # sees a candidate lose the contrast between the logging model's picks and the rest
    # (phoenix.registry.ranker_window.ndcg_with_unserved; docs/OPERATIONS.md)
    also_gated: tuple[str, ...] = ("weighted_ndcg_neg",)
    # fewer held-out impressions of positive value than this: the comparison is noise, keep the
    # promoted model (a first version is promoted regardless)
    min_weighted_positives: int = 30
    # actions with fewer positives than min_positives but at least this many are gated too, with
    # a tolerance of one standard error (0.3/√positives): a head that collapses is caught early
    noisy_min_positives: int = 20

    def __post_init__(self) -> None:
        for m in (self.weighted_metric, *self.also_gated):
            if m not in WEIGHTED_METRICS:
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
    """One row per compared metric: the weighted metric first, then every action's ROC-AUC. Actions
    are compared by their short names (foryou.core.actions): metrics stored by a version registered
    before issue 21 (enum-style keys, SERVER_TWEET_FAV) gate exactly like new ones."""
    from foryou.core.actions import normalize_action_keys

    cand, prom = normalize_action_keys(cand), normalize_action_keys(prom)
    rows: list[GateRow] = []
    for name in WEIGHTED_METRICS:
        c, p = cand.get(name), prom.get(name)
        gated = p is not None and (name == rule.weighted_metric or name in rule.also_gated)
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
        gated = (
            c is not None and p is not None and (n or 0) >= min(rule.min_positives, rule.noisy_min_positives)
        )
        # below min_positives an AUC is noise up to about one standard error: only a drop beyond it
        tol = (
            rule.auc_tolerance
            if (n or 0) >= rule.min_positives
            else max(rule.auc_tolerance, 0.3 / (n or 1) ** 0.5)
        )
        ok, reason = True, ""
        if gated and c < p - tol:
            ok = False
            reason = (
                f"{action} ROC-AUC {c:.4f} is {p - c:.4f} below the promoted model's {p:.4f} "
                f"(tolerance {tol:.3g}, {n} positives)"
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
    evidence = int(candidate_metrics.get("weighted_positives") or 0)
    if evidence < rule.min_weighted_positives:
        failed.insert(
            0,
            f"not enough evidence: {evidence} held-out impressions of positive value "
            f"(need ≥ {rule.min_weighted_positives}); the promoted model stays",
        )
    if failed:
        return False, failed
    aucs = [r for r in rows if r.gated and r.metric.endswith("ROC-AUC")]
    weighted = [r for r in rows if r.gated and not r.metric.endswith("ROC-AUC")]
    return True, [
        f"{len(aucs)} action AUCs within {rule.auc_tolerance:g} of the promoted model's "
        f"(≥ {rule.min_positives} positives; from {rule.noisy_min_positives}: within one standard "
        f"error; {GATE_ACTIONS_NOTE})",
        *(
            f"{w.metric} {_fmt(w.candidate)} vs promoted {_fmt(w.promoted)} "
            f"(tolerance {rule.weighted_tolerance:g})"
            for w in weighted
        ),
        f"{evidence} held-out impressions of positive value (≥ {rule.min_weighted_positives})",
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
    one. A warm start is a `fine_tune_config`: 1 ranking epoch at 1/100 of the learning rates,
    no exposure stage (the promoted model has been through it)."""
    from phoenix.ranker.checkpoint import read_config
    from phoenix.ranker.config import RankerConfig, TrainConfig

    model = RankerConfig.from_dict(read_config(registry.path(parent))["model"]) if parent else RankerConfig()
    if warm and parent:
        return fine_tune_config(TrainConfig(model=model))
    return TrainConfig(model=model)


# a warm start fine-tunes at this fraction of the from-scratch learning rates (dense AdamW and the
# hash table's row-wise AdaGrad, whose fresh accumulators make its first steps full-size): at the
# full rates a fine-tune on a small window of the parent's own picks forgets what the parent knew
# (docs/simulator.md, from the demo's ranker: 84% of the gap closed → 18% at 1, 81% at 0.1, 85% at
# 0.01). The drift grows with steps x rate, so a window of real traffic (many more steps) still
# moves the model, a hundred times more slowly per step than training from scratch
WARM_LR_SCALE = 0.01
WARM_EPOCHS = 1.0
WARM_WARMUP_STEPS = 10


def fine_tune_config(
    cfg: TrainConfig, epochs: float = WARM_EPOCHS, lr_scale: float = WARM_LR_SCALE
) -> TrainConfig:
    """`cfg` as a warm-start fine-tune: no exposure stage (the parent has been through it), no
    table re-initialisation, `epochs` ranking epochs at `lr_scale` of its learning rates."""
    return dataclasses.replace(
        cfg,
        exposure_epochs=0.0,
        epochs=epochs,
        lr=cfg.lr * lr_scale,
        embedding_lr=cfg.embedding_lr * lr_scale,
        warmup_steps=min(cfg.warmup_steps, WARM_WARMUP_STEPS),
    )


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
    # where the logs came from when they were built for this run (retrain_window: Kafka windows,
    # join counts); also in the manifest's extra.data_source
    data_source: dict[str, Any] | None = None


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
    data_source: dict[str, Any] | None = None,
    on_stage: Callable[[str], None] | None = None,
    candidate: str | Path | None = None,
) -> RetrainResult:
    """Train a candidate on `logs_dir`, compare it with the promoted version on the held-out window
    (the newest `config.eval_fraction` of `logs_dir`, or all of the later `eval_logs`), register it
    and promote it when the gate holds (`promote=False`: never promote, a dry run that still
    registers and reports). `config`: a phoenix `TrainConfig` (default: `default_train_config`);
    `weights`: phoenix `ScoreWeights` (default: `reference_weights()`). `data_source`: recorded as
    is in the manifest and the report; `on_stage`: told as each stage (train, evaluate, register,
    promote) begins. `candidate`: a checkpoint trained elsewhere to gate, register and promote
    instead of training one (nothing is trained; `logs_dir` only supplies the held-out window)."""
    from phoenix.ranker.train import train_ranker
    from phoenix.registry.ranker_warm import prepare_warm_start
    from phoenix.registry.ranker_window import build_window, score_checkpoint

    if kind != "ranker":
        raise ValueError(f"retrain supports kind='ranker' (got {kind!r}); register other kinds directly")
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    stage = on_stage or (lambda _text: None)
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
        if candidate is not None:
            stage(f"gate the given candidate {candidate} (not trained here)")
            shutil.copytree(candidate, ckpt)
            train_info: dict[str, Any] = {"given_candidate": str(Path(candidate).resolve())}
        else:
            if warm_start and parent_dir is not None and prepare_warm_start(ckpt, parent_dir, cfg):
                warm_from = parent
            t0 = time.monotonic()
            start = f"warm-started from {parent}" if warm_from else "from scratch"
            stage(f"train the ranker on {window.description['train_impressions']:,} impressions ({start})")
            trained = train_ranker(logs_dir, ckpt, cfg, evaluate=False)
            train_info = {
                "steps": trained["steps"],
                "train_s": trained["train_s"],
                "wall_s": round(time.monotonic() - t0, 2),
                "final_train_loss_ema": trained["final_train_loss_ema"],
                "config": cfg.to_dict(),
            }
        held = window.description["eval_impressions"]
        stage(
            f"evaluate on the held-out window ({held:,} impressions)"
            + (f" against {parent}" if parent else "")
        )
        cand = score_checkpoint(ckpt, window, weights)
        prom = score_checkpoint(parent_dir, window, weights) if parent_dir is not None else None
        ok, reasons = gate(cand, prom, rule)
        extra = {
            "gate": {"ok": ok, "reasons": reasons, "against": parent, "rule": rule.to_dict()},
            "warm_started_from": warm_from,
            "promoted_metrics": prom,
            "train": train_info,
            **({"data_source": data_source} if data_source is not None else {}),
        }
        stage("gate " + ("passed" if ok else "failed") + ": register the candidate")
        version = reg.register(kind, ckpt, cand, window.description, parent, extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    promoted = False
    if ok and promote:
        stage(f"promote {version}")
        try:
            reg.promote(kind, version, expect=parent, note="retrain: gate passed")
            promoted = True
        except RegistryError as e:  # someone promoted meanwhile: our comparison is stale
            reasons = [*reasons, f"not promoted: {e}"]
    elif ok:
        reasons = [*reasons, "gate passed; not promoted (promote=False)"]
    result = RetrainResult(
        version,
        promoted,
        ok,
        reasons,
        parent,
        warm_from,
        cand,
        prom,
        window.description,
        Path(),
        train_info,
        data_source,
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
        (
            f"- training: none, a given candidate `{t['given_candidate']}`"
            if t.get("given_candidate")
            else f"- training: {t.get('steps')} steps, {t.get('wall_s')} s, final loss EMA "
            f"{_fmt(t.get('final_train_loss_ema'))}"
        ),
        f"- logs: `{w.get('logs')}`" + (f", eval logs `{w['eval_logs']}`" if w.get("eval_logs") else ""),
        f"- training window: {_ms(w.get('train_start_ms'))} → {_ms(w.get('train_end_ms'))} "
        f"({w.get('train_impressions')} impressions)",
        f"- held-out window: {_ms(w.get('eval_start_ms'))} → {_ms(w.get('eval_end_ms'))} "
        f"({r.candidate_metrics.get('eval_impressions')} impressions, "
        f"{r.candidate_metrics.get('eval_requests')} requests)",
        f"- gate rule: no action's ROC-AUC more than {rule.auc_tolerance:g} below the promoted model's "
        f"(actions with ≥ {rule.min_positives} positives; from {rule.noisy_min_positives}: one standard "
        "error, 0.3/√positives), "
        f"{', '.join(dict.fromkeys((rule.weighted_metric, *rule.also_gated)))} not more than "
        f"{rule.weighted_tolerance:g} below, ≥ {rule.min_weighted_positives} held-out impressions "
        "of positive value",
        "",
        *_source_lines(r.data_source),
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


def _source_lines(src: dict[str, Any] | None) -> list[str]:
    """The Kafka windows and join counts of a windowed retrain (foryou.app.retrain_window)."""
    if not src:
        return []
    lines = ["## Data: replayed from Kafka and joined", ""]
    for key, label in (("served", "served (training)"), ("eval_served", "served (held out)")):
        w = src.get(key)
        if w:
            lines.append(f"- {label}: {_ms(w['since_ms'])} → {_ms(w['until_ms'])}, {w['records']:,} records")
    e = src.get("engagements")
    if e:
        lines.append(
            f"- engagements: {_ms(e['since_ms'])} → {_ms(e['until_ms'])}, {e['records']:,} records; "
            f"complete before {_ms(e['complete_before_ms'])}"
        )
    lines.append(f"- attribution window: {src.get('attribution_window_ms', 0) / 60_000:g} min")
    for key, label in (("dataset", "training log"), ("eval_dataset", "held-out log")):
        d = src.get(key)
        if d:
            lines.append(
                f"- {label}: {d['impressions']:,} impressions, {d['positives']:,} attributed actions, "
                f"{d['censored_impressions']:,} impressions censored (window still open), "
                f"{d['unattributed']:,} engagements unattributed"
            )
    return [*lines, ""]


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
    labels = [r.metric.replace(" ROC-AUC", "") for r in shown]  # gate_rows: short action names
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
