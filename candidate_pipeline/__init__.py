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
)
from candidate_pipeline.pipeline import CandidatePipeline, PipelineConfig
from candidate_pipeline.result import ComponentTrace, PipelineResult, Removed, StageTrace

__all__ = [
    "CandidatePipeline",
    "Component",
    "ComponentTrace",
    "Filter",
    "Hydrator",
    "PipelineConfig",
    "PipelineResult",
    "QueryHydrator",
    "Removed",
    "Scorer",
    "Selector",
    "SideEffect",
    "Source",
    "StageTrace",
]
