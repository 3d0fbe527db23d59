"""Bring-your-own-log: check an engagement log and bring it to the trainers' columns (`LOG_COLUMNS`).

Required: user_id, post_id, action, timestamp_ms. `action` is a name or a code of the one action table
(foryou.core.actions, docs/ranker.md "Bring your own log"). Optional, with defaults:
author_id (the post id: every post its own author), product_surface (0 = unspecified), dwell_ms (0).
A problem raises `LogError` whose message is one line naming the column, the bad value and how many
rows have it, so a user sees at once what to fix (instead of a traceback from deep in training)."""

from __future__ import annotations

import polars as pl

from foryou.core.actions import ACTION_CODES, ACTION_NAMES
from phoenix.log_dir import LOG_COLUMNS
from protos import events_pb2

REQUIRED = ("user_id", "post_id", "action", "timestamp_ms")
DEFAULTS: dict[str, str] = {
    "author_id": "post_id",  # a column name: copied from it
    "product_surface": "0",
    "dwell_ms": "0",
}
_COMMON = ("favorite", "reply", "retweet", "quote", "click", "share", "dwell", "impression")


class LogError(ValueError):
    """A log the trainers cannot use; the message is one line."""


def expected_actions() -> str:
    codes = sorted(c for c in ACTION_NAMES if c < 1000)
    return (
        f"expected one of {', '.join(_COMMON)}, ... (docs/ranker.md) or codes {codes[0]}..{codes[-1]}, 1000"
    )


def _int_column(df: pl.DataFrame, col: str) -> pl.Series:
    s = df[col]
    if s.dtype.is_integer():
        return s.cast(pl.Int64)
    if isinstance(s.dtype, pl.Datetime) and col == "timestamp_ms":
        return s.dt.epoch("ms")
    cast = s.cast(pl.Int64, strict=False)
    bad = cast.is_null() & s.is_not_null()
    if bad.any():
        example = s.filter(bad)[0]
        raise LogError(f"column {col}: non-integer value {example!r} in {int(bad.sum())} rows")
    return cast


def _action_column(s: pl.Series) -> pl.Series:
    if s.dtype.is_integer():
        codes = s.cast(pl.Int64)
        text = codes.cast(pl.String)
    else:
        text = s.cast(pl.String).str.strip_chars()
        # short names, codes as text and enum names (SERVER_TWEET_FAV, the proto's own spelling)
        lookup = {**ACTION_CODES, **{str(c): c for c in ACTION_NAMES}}
        lookup.update({n.lower(): int(v) for n, v in events_pb2.ActionName.items() if v != 0})
        codes = text.str.to_lowercase().replace_strict(lookup, default=None, return_dtype=pl.Int64)
    bad = codes.is_null() | ~codes.is_in(list(ACTION_NAMES))
    bad = bad & s.is_not_null()
    if bad.any():
        vals = text.filter(bad)
        counts = vals.value_counts(sort=True)
        value, n = counts.row(0)
        more = f" (and {counts.height - 1} other unknown values)" if counts.height > 1 else ""
        raise LogError(f"column action: unknown value {value!r} in {n} rows{more}; {expected_actions()}")
    return codes


def validate_log(df: pl.DataFrame, source: str = "log") -> pl.DataFrame:
    """`df` with exactly `LOG_COLUMNS` (Int64, action as a code), defaults filled in; `LogError`
    (one line, prefixed by `source`) when something is wrong."""
    try:
        return _validate(df)
    except LogError as e:
        raise LogError(f"{source}: {e}") from None


def _validate(df: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise LogError(
            f"missing column(s) {', '.join(missing)}; a log needs {', '.join(REQUIRED)} "
            f"(optional: {', '.join(DEFAULTS)})"
        )
    if df.height == 0:
        raise LogError("no rows")
    for c in [*REQUIRED, *(c for c in DEFAULTS if c in df.columns)]:
        nulls = df[c].null_count()
        if nulls:
            raise LogError(f"column {c}: {nulls} null values")
    out = {c: _int_column(df, c) for c in REQUIRED if c != "action"}
    out["action"] = _action_column(df["action"])
    for c in ("user_id", "post_id"):
        neg = int((out[c] <= 0).sum())
        if neg:
            raise LogError(f"column {c}: {neg} rows with ids <= 0 (ids must be positive)")
    for c, default in DEFAULTS.items():
        if c in df.columns:
            out[c] = _int_column(df, c)
        elif default in out:
            out[c] = out[default]
        else:
            out[c] = pl.Series(c, [int(default)] * df.height, dtype=pl.Int64)
    if int((out["dwell_ms"] < 0).sum()):
        raise LogError(f"column dwell_ms: {int((out['dwell_ms'] < 0).sum())} negative values")
    return pl.DataFrame({c: out[c].alias(c) for c in LOG_COLUMNS})


def is_positives_only(df: pl.DataFrame) -> bool:
    """True when the log has no impression / not-dwelled rows: nothing says what a user saw and
    skipped, so the ranker needs sampled negatives (docs/ranker.md)."""
    a = events_pb2.ActionName
    return not df["action"].is_in([a.IMPRESSION, a.CLIENT_TWEET_RECAP_NOT_DWELLED]).any()
