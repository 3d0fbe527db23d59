"""What a pipeline run returns: the partition of candidates, the hydrated query and traces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from candidate_pipeline.stage import Stage

Q = TypeVar("Q")
C = TypeVar("C")


@dataclass(slots=True)
class ComponentTrace:
    stage: Stage
    component: str
    latency_ms: float = 0.0
    input_count: int = 0
    output_count: int = 0  # fetched (sources), kept (filters), selected (selector), hydrated otherwise
    removed: int = 0  # filters: removed; selector: non-selected
    failed: int = 0  # hydrators/scorers: per-candidate errors (the rest were applied)
    error: str = ""  # set when the component failed open
    error_kind: str = ""  # error | timeout | length_mismatch

    @property
    def fetched(self) -> int:
        return self.output_count

    @property
    def kept(self) -> int:
        return self.output_count

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,  # plain str: the view is JSON-able
            "component": self.component,
            "latency_ms": round(self.latency_ms, 3),
            "input": self.input_count,
            "output": self.output_count,
            "removed": self.removed,
            "failed": self.failed,
            "error": self.error,
        }


@dataclass(slots=True)
class StageTrace:
    stage: Stage
    total: int = 0  # components declared
    enabled: int = 0  # components enabled for this query
    latency_ms: float = 0.0
    size: int = 0  # candidates after the stage
    components: list[ComponentTrace] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return sum(c.removed for c in self.components)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,
            "total": self.total,
            "enabled": self.enabled,
            "latency_ms": round(self.latency_ms, 3),
            "size": self.size,
            "components": [c.as_dict() for c in self.components],
        }


@dataclass(slots=True)
class Removed(Generic[C]):
    candidate: C
    filter: str  # class name of the filter that removed it


@dataclass
class PipelineResult(Generic[Q, C]):
    """Every candidate a source returned ends in exactly one of selected / filtered / non_selected."""

    query: Q  # the hydrated query
    selected: list[C] = field(default_factory=list)
    non_selected: list[C] = field(default_factory=list)
    retrieved: list[C] = field(default_factory=list)  # after hydration, before filtering
    retrieved_count: int = 0
    stages: list[StageTrace] = field(default_factory=list)
    request_id: str = ""
    latency_ms: float = 0.0
    # (filter name, removed candidates) per filter run; `filtered` expands it on first access, so a
    # request pays nothing per removed candidate unless someone looks
    removals: list[tuple[str, Sequence[C]]] = field(default_factory=list, repr=False)
    _filtered: list[Removed[C]] | None = field(default=None, repr=False, compare=False)
    _filtered_runs: int = field(default=0, repr=False, compare=False)

    @property
    def filtered(self) -> list[Removed[C]]:
        """Every candidate removed by a filter (pre- and post-selection), with the filter's name."""
        if self._filtered is None or self._filtered_runs != len(self.removals):
            self._filtered = [Removed(c, name) for name, cs in self.removals for c in cs]
            self._filtered_runs = len(self.removals)
        return self._filtered

    @property
    def filtered_count(self) -> int:
        return sum(len(cs) for _, cs in self.removals)

    @property
    def trace(self) -> list[StageTrace]:
        """Per-stage / per-component traces, in execution order (post-selection stages repeat once
        per backfill round)."""
        return self.stages

    @property
    def failures(self) -> list[ComponentTrace]:
        """Traces of the components that failed open (error, timeout, length mismatch)."""
        return [c for s in self.stages for c in s.components if c.error]

    @property
    def failed_components(self) -> list[str]:
        """Names of the components that failed open in this request (each once, in order)."""
        return list(dict.fromkeys(c.component for c in self.failures))

    def stage(self, name: Stage) -> StageTrace:
        """First trace of stage `name`."""
        return next(s for s in self.stages if s.stage == name)

    def filtered_by(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, cs in self.removals:
            counts[name] = counts.get(name, 0) + len(cs)
        return counts

    def summary(self) -> str:
        """The one-line per-request summary (reference `pipeline_summary` shape)."""
        parts = [
            f"request_id={self.request_id} latency_ms={self.latency_ms:.2f} selected={len(self.selected)} "
            f"filtered={self.filtered_count} non_selected={len(self.non_selected)}"
        ]
        for s in self.stages:
            d = f"total={s.total} enabled={s.enabled} latency_ms={s.latency_ms:.2f}"
            if s.stage is Stage.SOURCE:
                d += " fetched=[" + ",".join(f"{c.component}={c.output_count}" for c in s.components) + "]"
            d += f" size={s.size}"
            if s.stage.is_filter:
                d += f" kept={s.size} removed={s.removed} removed_per_filter=["
                d += ",".join(f"{c.component}={c.removed}" for c in s.components) + "]"
            failed = [f"{c.component}:{c.error_kind}" for c in s.components if c.error]
            if failed:
                d += " failed=[" + ",".join(failed) + "]"
            parts.append(f"{s.stage}{{{d}}}")
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able debug view: counts, filter removals and the full trace."""
        return {
            "request_id": self.request_id,
            "latency_ms": round(self.latency_ms, 3),
            "retrieved": self.retrieved_count,
            "selected": len(self.selected),
            "filtered": self.filtered_count,
            "non_selected": len(self.non_selected),
            "filtered_by": self.filtered_by(),
            "failed_components": self.failed_components,
            "stages": [s.as_dict() for s in self.stages],
        }
