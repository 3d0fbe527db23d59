"""`foryou experiment report`: per bucket of one experiment, from the training log (`dataset build`:
served ⨝ engagements, each row carrying its impression's `experiment_bucket`) the impressions,
engagement rate per action and realized weighted score, and from a simulator run (feeds.parquet)
the ground truth of the served feeds; each with a 95% confidence interval and the difference to
the control bucket (docs/simulator.md, "Experiments").

Statistics: users are randomized, not impressions, and one user's impressions are correlated, so
every figure is a ratio of per-user sums (Σ y_u / Σ n_u) with the delta-method variance over users
(cluster-robust): var ≈ Σ (y_u − R·n_u)² / (k (k − 1) n̄²) for k users. Buckets hold disjoint users,
so the difference to control has var_a + var_c; "significant" = its 95% interval excludes 0."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from home_mixer.params import ACTION_HEADS, DEFAULT_PARAMS
from phoenix.log_dir import ENGAGEMENTS_FILE
from protos import events_pb2 as ev

Z95 = 1.959964
IMPRESSION = ev.ActionName.IMPRESSION
# the rates reported (ActionName heads of the weighted scorer that the world draws) + any negative
REPORTED = ("favorite", "reply", "retweet", "click", "dwell", "follow_author", "share")
NEGATIVE = ("not_interested", "block_author", "mute_author", "report")
TRUTH = (
    ("served_favorite", "true P(favorite)"),
    ("served_negative", "true P(negative)"),
)
SIM_LOG_DIR = "experiment-log"
# the plot's per-bucket panel: these metrics, relative differences cut at ±CLIP_PCT
PLOTTED = (
    "favorite rate",
    "reply rate",
    "dwell rate",
    "negative rate",
    "weighted score",
    "true P(favorite)",
    "true P(negative)",
)
CLIP_PCT = 100.0  # what `foryou simulate` writes the run's served ⨝ engagements to


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    se: float

    @property
    def ci(self) -> tuple[float, float]:
        return self.value - Z95 * self.se, self.value + Z95 * self.se


def ratio_estimate(y: pl.Series, n: pl.Series) -> Estimate:
    """Σy/Σn over users (y, n per user) with its delta-method standard error."""
    k = len(n)
    total = float(n.sum())
    if k == 0 or total == 0:
        return Estimate(float("nan"), float("nan"))
    r = float(y.sum()) / total
    if k < 2:
        return Estimate(r, float("nan"))
    nbar = total / k
    resid = (y.cast(pl.Float64) - r * n.cast(pl.Float64)) ** 2
    return Estimate(r, math.sqrt(float(resid.sum()) / (k * (k - 1)) / nbar**2))


def bucket_of(labels: pl.Expr, experiment: str) -> pl.Expr:
    """The bucket of `experiment` in an `experiment_bucket` label ("<exp>:<bucket>,…"); null when
    the row's viewer was not in that experiment."""
    return labels.str.extract(rf"(?:^|,){experiment}:([^,]+)", 1)


def experiments_in(labels: pl.Series) -> list[str]:
    names: set[str] = set()
    for label in labels.drop_nulls().unique().to_list():
        names |= {part.split(":", 1)[0] for part in label.split(",") if ":" in part}
    return sorted(names)


def pick_experiment(labels: pl.Series, experiment: str) -> str:
    found = experiments_in(labels)
    if experiment:
        if experiment not in found:
            raise ValueError(f"no records of experiment {experiment!r} (found: {', '.join(found) or 'none'})")
        return experiment
    if len(found) != 1:
        raise ValueError(
            "no experiment buckets in the records"
            if not found
            else f"several experiments ({', '.join(found)}): choose one with --experiment"
        )
    return found[0]


def read_log(path: str | Path) -> pl.DataFrame:
    p = Path(path)
    if p.is_dir():
        p = p / ENGAGEMENTS_FILE
    return pl.read_parquet(p, columns=["user_id", "post_id", "action", "served_at_ms", "experiment_bucket"])


def impressions_table(log: pl.DataFrame, experiment: str) -> pl.DataFrame:
    """One row per impression of a viewer in `experiment`: user, bucket and a 0/1 column per action
    (REPORTED + NEGATIVE), `negative` (any of NEGATIVE) and `weighted` (the value model's weights
    applied to the realized actions: Σ weight·label, the default params)."""
    log = log.with_columns(bucket=bucket_of(pl.col("experiment_bucket"), experiment)).filter(
        pl.col("bucket").is_not_null()
    )
    key = ["user_id", "post_id", "served_at_ms"]
    imps = log.filter(pl.col("action") == IMPRESSION).select(*key, "bucket").unique(subset=key)
    heads = [*REPORTED, *NEGATIVE]
    acts = (
        log.filter(pl.col("action").is_in([ACTION_HEADS[h] for h in heads]))
        .select(*key, "action")
        .unique()
        .with_columns(pl.lit(1, pl.Int32).alias("hit"))
    )
    for h in heads:
        a = acts.filter(pl.col("action") == ACTION_HEADS[h]).select(*key, pl.col("hit").alias(h))
        imps = imps.join(a, on=key, how="left")
    imps = imps.with_columns(pl.col(h).fill_null(0) for h in heads)
    weights = DEFAULT_PARAMS.weights()
    return imps.with_columns(
        negative=pl.max_horizontal(*NEGATIVE),
        weighted=pl.sum_horizontal(pl.col(h) * weights[h] for h in heads),
    )


def compare(per_unit: pl.DataFrame, metrics: list[tuple[str, str]], control: str, n_col: str) -> pl.DataFrame:
    """Rows of (bucket, metric, value ± CI, difference to control ± CI, significant) from a frame
    with one row per unit (impression or feed): columns user_id, bucket, the metrics. Per-user sums
    feed the ratio estimates."""
    cols = [m for m, _ in metrics]
    users = per_unit.group_by("user_id", "bucket").agg(pl.len().alias("_n"), *(pl.col(c).sum() for c in cols))
    buckets = sorted(users["bucket"].unique().to_list(), key=lambda b: (b != control, b))
    if control not in buckets:
        raise ValueError(f"control bucket {control!r} has no records (buckets: {', '.join(buckets)})")
    est: dict[tuple[str, str], Estimate] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for b in buckets:
        u = users.filter(pl.col("bucket") == b)
        sizes[b] = (u.height, int(u["_n"].sum()))
        for c in cols:
            est[b, c] = ratio_estimate(u[c], u["_n"])
    rows: list[dict[str, Any]] = []
    for b in buckets:
        for c, label in metrics:
            e, ctl = est[b, c], est[control, c]
            d = Estimate(e.value - ctl.value, math.hypot(e.se, ctl.se))
            lo, hi = d.ci
            rows.append(
                {
                    "bucket": b,
                    "users": sizes[b][0],
                    n_col: sizes[b][1],
                    "metric": label,
                    "value": e.value,
                    "ci_low": e.ci[0],
                    "ci_high": e.ci[1],
                    "diff": None if b == control else d.value,
                    "diff_low": None if b == control else lo,
                    "diff_high": None if b == control else hi,
                    "rel_diff": None if b == control or not ctl.value else d.value / ctl.value,
                    "significant": None if b == control else bool(lo > 0 or hi < 0),
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None)


def control_of(buckets: list[str], control: str) -> str:
    if control:
        return control
    return "control" if "control" in buckets else sorted(buckets)[0]


def log_report(log: pl.DataFrame, experiment: str = "", control: str = "") -> tuple[str, pl.DataFrame]:
    """(experiment, per bucket × metric rows) from a training log."""
    exp = pick_experiment(log["experiment_bucket"], experiment)
    imps = impressions_table(log, exp)
    ctl = control_of(imps["bucket"].unique().to_list(), control)
    metrics = [(h, f"{h} rate") for h in REPORTED] + [
        ("negative", "negative rate"),
        ("weighted", "weighted score"),
    ]
    return exp, compare(imps, metrics, ctl, "impressions")


def sim_report(feeds: pl.DataFrame, experiment: str = "", control: str = "") -> tuple[str, pl.DataFrame]:
    """(experiment, per bucket × ground-truth metric rows) from a simulator's feeds.parquet."""
    if "bucket" not in feeds.columns:
        raise ValueError("these feeds have no bucket column (a simulation from before experiments)")
    exp = pick_experiment(feeds["bucket"], experiment)
    f = feeds.with_columns(bucket=bucket_of(pl.col("bucket"), exp)).filter(pl.col("bucket").is_not_null())
    ctl = control_of(f["bucket"].unique().to_list(), control)
    return exp, compare(f, list(TRUTH), ctl, "feeds")


def lift_by_round(feeds: pl.DataFrame, experiment: str) -> pl.DataFrame:
    """Per round and bucket: mean true P(favorite) of the served feeds (and newest / best)."""
    f = feeds.with_columns(bucket=bucket_of(pl.col("bucket"), experiment)).filter(
        pl.col("bucket").is_not_null()
    )
    return (
        f.group_by("round", "bucket")
        .agg(pl.col("served_favorite", "newest_favorite", "best_favorite").mean(), pl.len().alias("feeds"))
        .sort("round", "bucket")
    )


def plot_report(
    path: str | Path,
    experiment: str,
    log_rows: pl.DataFrame | None,
    sim_rows: pl.DataFrame | None,
    lift: pl.DataFrame | None,
) -> Path:
    """A PNG: the lift curve per bucket (true P(favorite) per round, when a simulation is given) and
    each bucket's relative difference to control per metric with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        p for p in (lift, log_rows if log_rows is not None or sim_rows is not None else None) if p is not None
    ]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6.5 * max(len(panels), 1), 4.2), squeeze=False)
    ax_i = 0
    if lift is not None:
        ax = axes[0][ax_i]
        ax_i += 1
        for i, b in enumerate(sorted(lift["bucket"].unique().to_list())):
            d = lift.filter(pl.col("bucket") == b)
            ax.plot(d["round"], d["served_favorite"], "-o", ms=3, color=f"C{i}", label=f"{b}: served")
        ref = lift.group_by("round").agg(pl.col("newest_favorite", "best_favorite").mean()).sort("round")
        ax.plot(ref["round"], ref["newest_favorite"], "--", color="C7", label="newest-first")
        ax.plot(ref["round"], ref["best_favorite"], "--", color="C2", label="best possible")
        ax.set_xlabel("round")
        ax.set_ylabel("true P(favorite) of the served feeds")
        ax.set_title(f"{experiment}: lift per round", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    rows = pl.concat([r for r in (log_rows, sim_rows) if r is not None], how="diagonal_relaxed")
    rows = rows.filter(
        pl.col("diff").is_not_null() & pl.col("rel_diff").is_not_null() & pl.col("metric").is_in(PLOTTED)
    )
    if rows.height:
        ax = axes[0][ax_i]
        labels = [f"{m} [{b}]" for m, b in zip(rows["metric"], rows["bucket"], strict=True)]
        base = (rows["value"] - rows["diff"]).abs()
        rel = (rows["diff"] / base * 100).to_list()
        lo = (rows["diff_low"] / base * 100).to_list()
        hi = (rows["diff_high"] / base * 100).to_list()
        colors = ["C3" if s else "C0" for s in rows["significant"].to_list()]
        for yi, (r, a, b, color) in enumerate(zip(rel, lo, hi, colors, strict=True)):
            rc, ac, bc = (max(-CLIP_PCT, min(CLIP_PCT, v)) for v in (r, a, b))
            ax.errorbar([rc], [yi], xerr=[[rc - ac], [bc - rc]], fmt="o", color=color, capsize=3)
            if abs(r) > CLIP_PCT:  # off the scale: the value as text at the edge
                ax.annotate(f"{r:+.0f}%", (rc, yi), xytext=(0, 5), textcoords="offset points", fontsize=7)
        ax.set_xlim(-CLIP_PCT * 1.1, CLIP_PCT * 1.1)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel(f"difference to control, % (95% CI, cut at ±{CLIP_PCT:.0f}%; red = significant)")
        ax.set_title(f"{experiment}: per bucket vs control", fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
