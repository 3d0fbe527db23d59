"""candidate_pipeline: the generic recommendation pipeline framework (asyncio)."""

from candidate_pipeline.components import (
    Component,
    Filter,
    Hydrator,
    QueryHydrator,
    Scorer,
    Selector,
    SideEffect,
    Source,
    sort_key,
)
from candidate_pipeline.context import RequestContext, current_context
from candidate_pipeline.pipeline import STAGES, CandidatePipeline, PipelineConfig
from candidate_pipeline.result import ComponentTrace, PipelineResult, Removed, StageTrace

__all__ = [
    "STAGES",
    "CandidatePipeline",
    "Component",
    "ComponentTrace",
    "Filter",
    "Hydrator",
    "PipelineConfig",
    "PipelineResult",
    "QueryHydrator",
    "Removed",
    "RequestContext",
    "Scorer",
    "Selector",
    "SideEffect",
    "Source",
    "StageTrace",
    "current_context",
    "sort_key",
]
