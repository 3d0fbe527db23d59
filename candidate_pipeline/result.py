"""What a pipeline run returns: the partition of candidates, the hydrated query and traces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Q = TypeVar("Q")
C = TypeVar("C")


@dataclass(slots=True)
class ComponentTrace:
    stage: str
    component: str
    latency_ms: float = 0.0
    input_count: int = 0
    output_count: int = 0  # fetched (sources), kept (filters), hydrated/scored otherwise
    removed: int = 0
    error: str = ""


@dataclass(slots=True)
class StageTrace:
    stage: str
    total: int = 0
    enabled: int = 0
    latency_ms: float = 0.0
    size: int = 0
    components: list[ComponentTrace] = field(default_factory=list)


@dataclass(slots=True)
class Removed(Generic[C]):
    candidate: C
    filter: str


@dataclass
class PipelineResult(Generic[Q, C]):
    query: Q
    selected: list[C] = field(default_factory=list)
    filtered: list[Removed[C]] = field(default_factory=list)
    non_selected: list[C] = field(default_factory=list)
    retrieved_count: int = 0
    stages: list[StageTrace] = field(default_factory=list)
    request_id: str = ""
    latency_ms: float = 0.0

    @property
    def failed_components(self) -> list[str]:
        """Components that failed open (error or timeout) in this request."""
        return [c.component for s in self.stages for c in s.components if c.error]

    def stage(self, name: str) -> StageTrace:
        """First trace of stage `name` (post-selection stages may repeat during backfill)."""
        return next(s for s in self.stages if s.stage == name)

    def filtered_by(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.filtered:
            counts[r.filter] = counts.get(r.filter, 0) + 1
        return counts

    def summary(self) -> str:
        parts = []
        for s in self.stages:
            detail = f"enabled={s.enabled}/{s.total} latency_ms={s.latency_ms:.2f} size={s.size}"
            extra = ",".join(
                f"{c.component}={c.output_count}"
                + (f"-{c.removed}" if c.removed else "")
                + ("!" if c.error else "")
                for c in s.components
            )
            parts.append(f"{s.stage}{{{detail} [{extra}]}}")
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "selected": len(self.selected),
            "filtered": len(self.filtered),
            "non_selected": len(self.non_selected),
        }
