"""The replay manifest (`manifest.json` in the output directory): what a replay has read and
written, rewritten atomically after every part file so an interrupted replay resumes exactly where
its last part ended.

Per partition it keeps `next` (the first offset not yet covered by a written part), `end` (the end
offset recorded when the latest run started) and whether the window's end was seen there."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
VERSION = 1


@dataclass
class PartitionState:
    start: int  # first offset this replay read (offsets_for_times of `since`, or the beginning)
    next: int  # every offset below it is in a written part (or was skipped / malformed)
    end: int  # stop before this offset: the high watermark recorded when the latest run started
    window_end: bool = False  # a message with timestamp >= until was seen: nothing more to read, ever
    # every message read is one of: a row, malformed, or outside the window
    rows: int = 0
    malformed: int = 0
    outside: int = 0  # read but before `since` (a broker that cannot seek by time, late timestamps)
    bytes: int = 0

    @property
    def done(self) -> bool:
        return self.window_end or self.next >= self.end


@dataclass
class PartFile:
    file: str
    rows: int
    bytes: int


@dataclass
class Manifest:
    topic: str  # logical name: engagements, served, posts, user-events
    kafka_topic: str
    since_ms: int
    until_ms: int | None
    partitions: dict[int, PartitionState] = field(default_factory=dict)
    parts: list[PartFile] = field(default_factory=list)
    complete: bool = False
    version: int = VERSION

    def same_window(self, topic: str, kafka_topic: str, since_ms: int, until_ms: int | None) -> bool:
        return (self.topic, self.kafka_topic, self.since_ms, self.until_ms) == (
            topic,
            kafka_topic,
            since_ms,
            until_ms,
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["partitions"] = {str(p): v for p, v in d["partitions"].items()}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        if d.get("version") != VERSION:
            raise ValueError(f"replay manifest version {d.get('version')!r}, expected {VERSION}")
        return cls(
            topic=d["topic"],
            kafka_topic=d["kafka_topic"],
            since_ms=d["since_ms"],
            until_ms=d["until_ms"],
            partitions={int(p): PartitionState(**v) for p, v in d["partitions"].items()},
            parts=[PartFile(**f) for f in d["parts"]],
            complete=d["complete"],
        )


def read_manifest(out_dir: str | Path) -> Manifest | None:
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return None
    return Manifest.from_json(json.loads(path.read_text()))


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, fsync, rename: readers and resumed runs see the old or the new
    file, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(out_dir: Path, manifest: Manifest) -> None:
    write_atomic(out_dir / MANIFEST, json.dumps(manifest.to_json(), indent=1).encode())


def replay_files(path: str | Path) -> list[Path]:
    """The Parquet files of a replay output: the parts its manifest lists (never an orphan of an
    interrupted run), or every `*.parquet` of a directory without one, or the file itself."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or directory")
    m = read_manifest(p)
    if m is None:
        return sorted(p.glob("*.parquet"))
    if not m.complete:
        raise ValueError(f"{p}: the replay of {m.topic} there was interrupted; rerun it to finish")
    return [p / f.file for f in m.parts]
