"""The Parquet row of each replayable topic: one `Column` per field, declared once.

A column's value is read from the decoded message by its getter, by default the protobuf field of
the same name. Adding a scalar field to `ServedEvent` (a model version, a source, an experiment
bucket) is one line in `SERVED`; a repeated field (packed per-action probabilities) is one line with
a `pl.List` dtype and a getter that turns it into a numpy array (None for null)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from protos import events_pb2 as ev


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType | type[pl.DataType]
    get: Callable[[Any], Any] | None = None  # None: the message field called `name`


@dataclass(frozen=True)
class TopicSchema:
    """How one topic's messages become rows: `decode` raises on a malformed value."""

    decode: Callable[[bytes], Any]
    columns: tuple[Column, ...]

    @property
    def schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    def row_getter(self) -> Callable[[Any], tuple[Any, ...]]:
        """message -> row tuple; one C-level attrgetter when every column is a plain field (the
        common case, and the hot loop of a replay)."""
        if all(c.get is None for c in self.columns):
            names = [c.name for c in self.columns]
            if len(names) == 1:
                one = operator.attrgetter(names[0])
                return lambda m: (one(m),)
            return operator.attrgetter(*names)  # type: ignore[return-value]
        getters = [c.get or operator.attrgetter(c.name) for c in self.columns]
        return lambda m: tuple(g(m) for g in getters)


ENGAGEMENTS = TopicSchema(
    ev.EngagementEvent.FromString,
    (
        Column("user_id", pl.Int64),
        Column("post_id", pl.Int64),
        Column("author_id", pl.Int64),
        Column("action", pl.Int32),
        Column("timestamp_ms", pl.Int64),
        Column("product_surface", pl.Int32),
        Column("dwell_ms", pl.Int64),
    ),
)


def _action_probs(m: ev.ServedEvent) -> np.ndarray | None:
    """The packed float32 probabilities as one float32 array (~370 bytes in the part buffer; a list
    of Python floats would be ~2 KB); None (null) when the ranker did not score the post."""
    return np.array(m.action_probs, np.float32) if len(m.action_probs) else None


def _predicted_dwell(m: ev.ServedEvent) -> float | None:
    return m.predicted_dwell_s if m.HasField("predicted_dwell_s") else None  # unset: not scored


# The feature log: new ServedEvent fields go here (and only here).
SERVED = TopicSchema(
    ev.ServedEvent.FromString,
    (
        Column("viewer_id", pl.Int64),
        Column("post_id", pl.Int64),
        Column("author_id", pl.Int64),
        Column("position", pl.Int32),
        Column("score", pl.Float64),
        Column("request_id", pl.String),
        Column("model_version", pl.String),
        Column("served_at_ms", pl.Int64),
        Column("in_network", pl.Boolean),
        Column("source", pl.String),
        Column("retrieval_model_version", pl.String),
        Column("action_probs", pl.List(pl.Float32), _action_probs),
        Column("predicted_dwell_s", pl.Float32, _predicted_dwell),
        Column("weighted_score", pl.Float64),
        Column("experiment_bucket", pl.String),
        Column("product_surface", pl.Int32),
    ),
)


def _post_part(m: ev.PostEvent) -> Any:
    return m.create if m.HasField("create") else m.delete


def _create_only(field: str) -> Callable[[ev.PostEvent], Any]:
    return lambda m: getattr(m.create, field) if m.HasField("create") else None


def _post_kind(m: ev.PostEvent) -> str:
    kind = m.WhichOneof("event")
    if kind is None:  # neither create nor delete: nothing to replay, treat as malformed
        raise ValueError("PostEvent without create or delete")
    return kind


POSTS = TopicSchema(
    ev.PostEvent.FromString,
    (
        Column("kind", pl.String, _post_kind),
        Column("post_id", pl.Int64, lambda m: _post_part(m).post_id),
        Column("author_id", pl.Int64, lambda m: _post_part(m).author_id),
        Column("created_at", pl.Int64, _create_only("created_at")),
        Column("text", pl.String, _create_only("text")),
        Column("deleted_at_ms", pl.Int64, lambda m: m.delete.deleted_at_ms if m.HasField("delete") else None),
    ),
)

USER_EVENTS = TopicSchema(
    ev.UserEvent.FromString,
    (
        Column("user_id", pl.Int64),
        Column("type", pl.String, lambda m: ev.UserEventType.Name(m.type)),
        Column("target_user_id", pl.Int64),
        Column("keyword", pl.String),
        Column("timestamp_ms", pl.Int64),
        Column("screen_name", pl.String),
    ),
)

SCHEMAS: dict[str, TopicSchema] = {
    "engagements": ENGAGEMENTS,
    "served": SERVED,
    "posts": POSTS,
    "user-events": USER_EVENTS,
}
