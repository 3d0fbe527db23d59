"""Prometheus metrics shared by every pipeline instance (module-level singletons so many pipelines
in one process do not re-register), labelled by pipeline class name and component class name."""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import Counter, Histogram

_FAST = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_SIZE = (0, 10, 50, 100, 250, 500, 750, 1000, 1500, 2000, 2500, 5000)

REQUEST_SECONDS = Histogram(
    "foryou_pipeline_request_seconds",
    "Whole pipeline execution",
    ["pipeline"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5),
)
STAGE_SECONDS = Histogram(
    "foryou_pipeline_stage_seconds", "Per stage latency", ["pipeline", "stage"], buckets=_FAST
)
STAGE_SIZE = Histogram(
    "foryou_pipeline_stage_size", "Candidates after each stage", ["pipeline", "stage"], buckets=_SIZE
)
COMPONENT_SECONDS = Histogram(
    "foryou_pipeline_component_seconds",
    "Per component latency",
    ["pipeline", "stage", "component"],
    buckets=_FAST,
)
COMPONENT_CANDIDATES = Counter(
    "foryou_pipeline_component_candidates_total",
    "Candidates per component and outcome (fetched by sources, kept/removed by filters)",
    ["pipeline", "stage", "component", "outcome"],
)
COMPONENT_ERRORS = Counter(
    "foryou_pipeline_component_errors_total",
    "Components that failed open (error, timeout, length_mismatch)",
    ["pipeline", "stage", "component", "kind"],
)
RESULT_SIZE = Histogram(
    "foryou_pipeline_result_size",
    "Selected candidates per request",
    ["pipeline"],
    buckets=(0, 1, 5, 10, 20, 30, 35, 40, 50),
)
RESULT_EMPTY = Counter(
    "foryou_pipeline_result_empty_total", "Requests with no selected candidate", ["pipeline"]
)

CACHE_LOOKUPS = Counter(
    "foryou_pipeline_cache_lookups_total",
    "CachedHydrator lookups by outcome (hit, miss)",
    ["pipeline", "component", "outcome"],
)


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}
M = TypeVar("M", Histogram, Counter)


def child(metric: M, *labels: str) -> M:
    """`metric.labels(*labels)`, memoised: the framework records ~50 series per request."""
    key = (id(metric), labels)
    c: M | None = _CHILDREN.get(key)
    if c is None:
        c = _CHILDREN[key] = metric.labels(*labels)
    return c
