"""The training dataset: served impressions (the `served` replay) joined with the engagements that
follow them (the `engagements` replay) into the engagement-log schema the trainers read
(`phoenix/log_dir.py` LOG_COLUMNS), followed by each row's served provenance (`PROVENANCE`).

Rules (docs/OPERATIONS.md, "Replay and the training dataset"):

- every served impression is one IMPRESSION row (action 1000, the served time, surface home
  timeline, dwell 0): an impression without an attributed action is a negative;
- an engagement (any action but IMPRESSION) by viewer u on post p at time t is attributed to the
  latest impression of p to u at s with s <= t <= s + window (both ends inclusive); engagements
  before every impression, after the window, or on posts never served to that viewer are dropped;
- duplicates: servings of one post to one viewer at the same millisecond are one impression; one
  action attributed twice to the same impression keeps its earliest event (then the longest dwell);
- provenance: every row (an impression and each action attributed to it) also carries the served
  record of its impression (`PROVENANCE`: when it was served, request id, position, source, scores,
  predicted dwell, both model versions, experiment bucket), so a log can be cut by model version or
  experiment arm with the labels whole; the impression row's surface is the served one. The
  per-action probabilities stay in the `served` replay (64 floats would quadruple a row that the
  trainers never read): join them back on (request_id, post_id);
- an impression whose window reaches past the end of the engagement log (`engagements_until_ms`)
  is dropped with its actions: its negatives are not known yet.

Memory stays bounded by hashing viewers into buckets of about `rows_per_bucket` input rows: one
streaming pass (`scan_parquet` -> `sink_parquet` partitioned by bucket) splits both logs, each
bucket is joined in memory and written, and the joined buckets are streamed into the output."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from foryou.app.replay import read_manifest, replay_files
from foryou.app.replay.schemas import ENGAGEMENTS
from phoenix.log_dir import LOG_COLUMNS
from protos import events_pb2 as ev

LOG_SCHEMA = ENGAGEMENTS.schema  # the `engagements` replay's columns are the training log's, in order
SERVED_KEYS = {"viewer_id": pl.Int64, "post_id": pl.Int64, "author_id": pl.Int64, "served_at_ms": pl.Int64}
# what the dataset keeps of each impression's served record, after LOG_COLUMNS (readers of the
# training log select LOG_COLUMNS and ignore these); absent in an older replay: null
PROVENANCE: dict[str, pl.DataType | type[pl.DataType]] = {
    "served_at_ms": pl.Int64,  # the impression's time (an action row's own time is timestamp_ms)
    "request_id": pl.String,
    "position": pl.Int32,
    "source": pl.String,
    "in_network": pl.Boolean,
    "score": pl.Float64,
    "weighted_score": pl.Float64,
    "predicted_dwell_s": pl.Float32,
    "model_version": pl.String,  # the ranker's
    "retrieval_model_version": pl.String,
    "experiment_bucket": pl.String,
}
DATASET_SCHEMA = pl.Schema({**LOG_SCHEMA, **PROVENANCE})
_SERVED_OPTIONAL = {
    **{k: v for k, v in PROVENANCE.items() if k != "served_at_ms"},
    "product_surface": pl.Int32,
}
SERVED_COLUMNS = {**SERVED_KEYS, **_SERVED_OPTIONAL}
IMPRESSION = ev.ActionName.IMPRESSION
HOME_TIMELINE = ev.ProductSurface.PRODUCT_SURFACE_HOME_TIMELINE  # where the For You feed is served
# 30 minutes: a home-timeline session (reading, opening the conversation, replying, coming back
# from a video) ends well within it; a longer window would credit an old impression with an
# engagement made after seeing the post elsewhere (profile, search), and delays the day's data
# (the last impressions' labels are known only `window` after them).
DEFAULT_ATTRIBUTION_WINDOW_MS = 30 * 60 * 1000
# How far before a retrain window its engagements are read as history context (docs/OPERATIONS.md)
DEFAULT_HISTORY_MS = 7 * 24 * 3600 * 1000
# ~250 MB above the imports per bucket (sorts and the join copy each column a few times), ~+110 MB
# with the served provenance (gathered once per bucket)
DEFAULT_ROWS_PER_BUCKET = 1_000_000
_BUCKET_SEED = 0x5EED
SPLIT_IN_ONE_PASS = True  # False: filtered scans per bucket (tests cover both)


@dataclass
class DatasetSummary:
    out: Path
    rows: int = 0
    impressions: int = 0  # IMPRESSION rows written
    positives: int = 0  # action rows written (attributed engagements)
    served: int = 0  # served records read
    duplicate_impressions: int = 0
    censored_impressions: int = 0  # windows past the end of the engagement log (dropped)
    engagements: int = 0  # engagement records read, IMPRESSION actions excluded
    unattributed: int = 0  # before any impression, after the window or never served
    duplicate_actions: int = 0
    censored_actions: int = 0  # attributed to a censored impression (dropped with it)
    buckets: int = 0
    seconds: float = 0.0
    engagements_until_ms: int | None = None
    files: list[Path] = field(default_factory=list)


def _scan(files: list[Path], schema: dict[str, pl.DataType | type[pl.DataType]]) -> pl.LazyFrame:
    if not files:
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet(files).select([pl.col(c).cast(t) for c, t in schema.items()])


def _scan_served(files: list[Path]) -> pl.LazyFrame:
    """The served replay; files from before a column existed (older replays, hand-made Parquet)
    get it as null. The keys are required."""
    old = [f for f in files if not set(_SERVED_OPTIONAL) <= set(pl.read_parquet_schema(f))]
    if not old:
        return _scan(files, SERVED_COLUMNS)
    frames = []
    for f in files:  # one scan per file: their columns differ
        have = pl.read_parquet_schema(f)
        frames.append(
            pl.scan_parquet(f).select(
                [
                    pl.col(c).cast(t) if c in have or c in SERVED_KEYS else pl.lit(None, t).alias(c)
                    for c, t in SERVED_COLUMNS.items()
                ]
            )
        )
    return pl.concat(frames)


def _bucket_of(user_col: str, buckets: int) -> pl.Expr:
    return pl.col(user_col).hash(_BUCKET_SEED) % buckets


def _split(lf: pl.LazyFrame, user_col: str, buckets: int, work: Path) -> Callable[[int], pl.LazyFrame]:
    """bucket index -> its rows. One streaming pass writes every bucket's rows to its own files;
    without polars' (unstable) PartitionBy sink, each bucket is a filtered scan of all the input."""
    if buckets == 1:
        return lambda k: lf
    schema = lf.collect_schema()
    if not SPLIT_IN_ONE_PASS or not hasattr(pl, "PartitionBy"):
        return lambda k: lf.filter(_bucket_of(user_col, buckets) == k)
    lf.with_columns(_bucket_of(user_col, buckets).alias("_bucket")).sink_parquet(
        pl.PartitionBy(work, key="_bucket", include_key=False), mkdir=True
    )

    def bucket(k: int) -> pl.LazyFrame:
        files = sorted((work / f"_bucket={k}").glob("*.parquet"))  # none: the bucket is empty
        return pl.scan_parquet(files).cast(schema) if files else pl.LazyFrame(schema=schema)

    return bucket


def _join_bucket(
    served: pl.DataFrame, eng: pl.DataFrame, window_ms: int, until_ms: int | None, s: DatasetSummary
) -> pl.DataFrame:
    """One bucket of viewers: impression rows + attributed action rows, in DATASET_SCHEMA. The
    join works on numeric keys and each impression's row number `_i` in `served`; the provenance
    (strings mostly) is gathered once at the end: sorting and joining it along was 2x slower."""
    s.served += served.height
    imps = (
        served.select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"),
            pl.col("viewer_id").alias("user_id"),
            "post_id",
            "author_id",
            pl.col("served_at_ms").alias("timestamp_ms"),
            pl.col("product_surface").alias("surface"),
        )
        .sort("user_id", "post_id", "timestamp_ms", "_i")
        .unique(subset=["user_id", "post_id", "timestamp_ms"], keep="first", maintain_order=True)
    )
    s.duplicate_impressions += served.height - imps.height
    acts = eng.filter(pl.col("action") != IMPRESSION).sort("timestamp_ms")
    s.engagements += acts.height
    # latest impression at or before each engagement, at most `window_ms` before it
    att = acts.join_asof(
        imps.select("user_id", "post_id", pl.col("timestamp_ms").alias("imp_ms"), "_i").sort("imp_ms"),
        left_on="timestamp_ms",
        right_on="imp_ms",
        by=["user_id", "post_id"],
        strategy="backward",
        tolerance=window_ms,
        check_sortedness=False,  # sorted by time overall, hence within every (user, post)
    ).filter(pl.col("imp_ms").is_not_null())
    s.unattributed += acts.height - att.height
    if until_ms is not None:  # censor after attribution, so nothing moves to an older impression
        open_imp = pl.col("timestamp_ms") + window_ms >= until_ms
        s.censored_impressions += imps.filter(open_imp).height
        imps = imps.filter(~open_imp)
        n = att.height
        att = att.filter(pl.col("imp_ms") + window_ms < until_ms)
        s.censored_actions += n - att.height
    n = att.height
    att = att.sort(
        ["user_id", "post_id", "imp_ms", "action", "timestamp_ms", "dwell_ms", "product_surface"],
        descending=[False, False, False, False, False, True, False],
    ).unique(subset=["user_id", "post_id", "imp_ms", "action"], keep="first", maintain_order=True)
    s.duplicate_actions += n - att.height
    # an older record (0 = unspecified, null = no column) was served on the home timeline
    surface = pl.when(pl.col("surface").fill_null(0) > 0).then(pl.col("surface")).otherwise(HOME_TIMELINE)
    imp_rows = imps.select(
        "user_id",
        "post_id",
        "author_id",
        pl.lit(IMPRESSION, pl.Int32).alias("action"),
        "timestamp_ms",
        surface.cast(pl.Int32).alias("product_surface"),
        pl.lit(0, pl.Int64).alias("dwell_ms"),
        pl.col("timestamp_ms").alias("served_at_ms"),
        "_i",
    )
    s.impressions += imp_rows.height
    s.positives += att.height
    act_rows = att.select(*LOG_COLUMNS, pl.col("imp_ms").alias("served_at_ms"), "_i")
    keys = pl.Schema([*LOG_SCHEMA.items(), ("served_at_ms", pl.Int64()), ("_i", pl.UInt32())])
    out = pl.concat([imp_rows.cast(keys), act_rows.cast(keys)]).sort(
        # per viewer in time order, an impression before the actions of the same millisecond
        pl.col("user_id"),
        pl.col("timestamp_ms"),
        pl.col("action") != IMPRESSION,
        pl.col("post_id"),
        "action",
    )
    # every row: the served record of its impression (an action row: the one it is attributed to)
    provenance = served.select([c for c in PROVENANCE if c != "served_at_ms"])[out["_i"].to_numpy()]
    return (
        pl.concat([out.drop("_i"), provenance], how="horizontal")
        .select(DATASET_SCHEMA.names())
        .cast(DATASET_SCHEMA)
    )


def _log_until(engagements_dir: Path) -> int | None:
    m = read_manifest(engagements_dir) if engagements_dir.is_dir() else None
    return None if m is None else m.until_ms


def build_dataset(
    served_dir: str | Path,
    engagements_dir: str | Path,
    out_path: str | Path,
    attribution_window_ms: int = DEFAULT_ATTRIBUTION_WINDOW_MS,
    *,
    engagements_until_ms: int | None = None,
    rows_per_bucket: int = DEFAULT_ROWS_PER_BUCKET,
) -> DatasetSummary:
    """Join the `served` replay (a replay directory, a directory of Parquet files, or one file) with
    the `engagements` replay into one Parquet file at `out_path` (DATASET_SCHEMA: LOG_COLUMNS then
    PROVENANCE; one row per action and one IMPRESSION row per impression, sorted by viewer then
    time within each bucket).

    `engagements_until_ms`: the engagement log is complete before it; None takes the engagement
    replay's `until` from its manifest (none there: nothing is censored)."""
    t0 = time.monotonic()
    if attribution_window_ms < 0:
        raise ValueError("attribution_window_ms must be >= 0")
    out = Path(out_path)
    eng_path = Path(engagements_dir)
    until = engagements_until_ms if engagements_until_ms is not None else _log_until(eng_path)
    served_files, eng_files = replay_files(served_dir), replay_files(eng_path)
    s = DatasetSummary(out=out, engagements_until_ms=until, files=[*served_files, *eng_files])
    served_lf = _scan_served(served_files)
    eng_lf = _scan(eng_files, dict(LOG_SCHEMA))
    n_in = sum(lf.select(pl.len()).collect().item() for lf in (served_lf, eng_lf))  # Parquet metadata
    s.buckets = max(1, math.ceil(n_in / max(1, rows_per_bucket)))
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.with_name(f".{out.name}.buckets")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        served_of = _split(served_lf, "viewer_id", s.buckets, work / "served")
        eng_of = _split(eng_lf, "user_id", s.buckets, work / "engagements")
        bucket_files = []
        for k in range(s.buckets):
            served = served_of(k).collect(engine="streaming")
            eng = eng_of(k).collect(engine="streaming")
            part = _join_bucket(served, eng, attribution_window_ms, until, s)
            del served, eng
            s.rows += part.height
            bucket_files.append(work / f"joined-{k:05d}.parquet")
            part.write_parquet(bucket_files[-1], compression="zstd")
            del part
        tmp = out.with_name(out.name + ".tmp")
        pl.scan_parquet(bucket_files).sink_parquet(tmp, compression="zstd", maintain_order=True)
        tmp.replace(out)  # readers never see a half-written dataset
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s.seconds = time.monotonic() - t0
    return s


def write_history(engagements_dir: str | Path, out_path: str | Path) -> int:
    """The engagement replay in `engagements_dir` as an engagement log (LOG_COLUMNS) at `out_path`:
    a log directory's history context (phoenix.log_dir.HISTORY_FILE). Returns its rows."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    df = _scan(replay_files(Path(engagements_dir)), dict(LOG_SCHEMA)).select(LOG_COLUMNS).collect()
    tmp = out.with_name(out.name + ".tmp")
    df.write_parquet(tmp, compression="zstd")
    tmp.replace(out)
    return df.height
