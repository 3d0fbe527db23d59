"""Offline replay of a Kafka topic into Parquet, in a time window, resumable, in bounded memory.

Replaying `engagements` yields the engagement log; `served` yields the feature log that
`foryou.app.dataset.build_dataset` joins with it into training data; `posts` and `user-events`
yield tables for inspection. Rules (window, end offsets, resume, malformed messages) are in
docs/OPERATIONS.md, "Replay and the training dataset"."""

from foryou.app.replay.deadline import ReplayTimeout
from foryou.app.replay.export import merge_parts
from foryou.app.replay.manifest import Manifest, read_manifest, replay_files
from foryou.app.replay.replayer import DEFAULT_PART_ROWS, ReplayProgress, ReplaySummary, replay_topic
from foryou.app.replay.schemas import SCHEMAS, Column, TopicSchema

__all__ = [
    "DEFAULT_PART_ROWS",
    "SCHEMAS",
    "Column",
    "Manifest",
    "ReplayProgress",
    "ReplaySummary",
    "ReplayTimeout",
    "TopicSchema",
    "merge_parts",
    "read_manifest",
    "replay_files",
    "replay_topic",
]
