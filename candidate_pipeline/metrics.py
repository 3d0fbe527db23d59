"""Prometheus metrics shared by every pipeline instance (labelled by pipeline class name)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
REQUEST_SECONDS = Histogram(
    "foryou_pipeline_request_seconds",
    "Whole pipeline execution",
    ["pipeline"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5),
)
STAGE_SECONDS = Histogram(
    "foryou_pipeline_stage_seconds", "Per stage latency", ["pipeline", "stage"], buckets=_FAST
)
COMPONENT_SECONDS = Histogram(
    "foryou_pipeline_component_seconds",
    "Per component latency",
    ["pipeline", "stage", "component"],
    buckets=_FAST,
)
COMPONENT_ERRORS = Counter(
    "foryou_pipeline_component_errors_total",
    "Components that failed open (error, timeout, length mismatch)",
    ["pipeline", "stage", "component", "kind"],
)
RESULT_SIZE = Histogram(
    "foryou_pipeline_result_size",
    "Selected candidates per request",
    ["pipeline"],
    buckets=(0, 1, 5, 10, 20, 30, 35, 40, 50),
)
