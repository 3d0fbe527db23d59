"""candidate_pipeline: the generic recommendation pipeline framework (asyncio)."""

from candidate_pipeline.cached_hydrator import CachedHydrator, MissingHydration
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
from candidate_pipeline.ttl_cache import CacheStore, TtlCache

__all__ = [
    "STAGES",
    "CacheStore",
    "CachedHydrator",
    "CandidatePipeline",
    "Component",
    "ComponentTrace",
    "Filter",
    "Hydrator",
    "MissingHydration",
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
    "TtlCache",
    "current_context",
    "sort_key",
]
