"""candidate_pipeline: the generic recommendation pipeline framework (asyncio)."""

from candidate_pipeline.cached_hydrator import CachedHydrator, MissingHydration
from candidate_pipeline.components import (
    Component,
    Filter,
    Hydrator,
    MaybeAwaitable,
    QueryHydrator,
    Scorer,
    Selector,
    SideEffect,
    Source,
    sort_key,
)
from candidate_pipeline.context import RequestContext, current_context
from candidate_pipeline.filter_result import FilterResult
from candidate_pipeline.pipeline import CandidatePipeline, PipelineConfig
from candidate_pipeline.result import ComponentTrace, PipelineResult, Removed, StageTrace
from candidate_pipeline.stage import Stage
from candidate_pipeline.ttl_cache import CacheStore, TtlCache

__all__ = [
    "CacheStore",
    "CachedHydrator",
    "CandidatePipeline",
    "Component",
    "ComponentTrace",
    "Filter",
    "FilterResult",
    "Hydrator",
    "MaybeAwaitable",
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
    "Stage",
    "StageTrace",
    "TtlCache",
    "current_context",
    "sort_key",
]
