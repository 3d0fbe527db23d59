"""Limits and admission flags of `foryou serve …`: how much a client may send in one request, how
many calls a server holds, how many feed requests run at once. Each flag sets one field of one
service's config dataclass (RankingHandlerConfig, RetrievalServiceConfig, ThunderConfig,
HomeMixerConfig); a flag left unset keeps that field's default, so the defaults live in the
dataclasses only. Like every flag, each is also read from FORYOU_SERVE_<COMMAND>_<FLAG> and from
the `--config` file (docs/OPERATIONS.md)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:  # heavy (torch, grpc): imported inside the builders
    from home_mixer.service import HomeMixerConfig
    from phoenix.ranker.handler import RankingHandlerConfig
    from phoenix.retrieval.service import RetrievalServiceConfig
    from thunder.config import ThunderConfig

C = TypeVar("C")


def _limit(help_text: str) -> Any:
    return typer.Option(min=1, help=help_text)


MaxCandidates = Annotated[
    int | None, _limit("Predict: most candidates per request (default 4,000); more -> INVALID_ARGUMENT")
]
MaxHistory = Annotated[
    int | None,
    _limit("Predict and Retrieve: most history items per request (default 512); more -> INVALID_ARGUMENT"),
]
MaxExclusions = Annotated[
    int | None,
    _limit("Retrieve: most exclude_post_ids per request (default 10,000); more -> INVALID_ARGUMENT"),
]
MaxTopK = Annotated[int | None, _limit("Retrieve: largest top_k (default 10,000); more -> INVALID_ARGUMENT")]
ThunderMaxIds = Annotated[
    int | None,
    _limit("Most following_user_ids, and most exclude_post_ids, per request (default 10,000)"),
]
FeedMaxIds = Annotated[
    int | None,
    _limit("Most seen_ids + served_ids per feed request (default 100,000); more -> INVALID_ARGUMENT"),
]
MaxRequestBytes = Annotated[
    int | None,
    _limit(
        "Request bodies over this many bytes are refused unread (RESOURCE_EXHAUSTED); "
        "default: the worst-case size of a valid request"
    ),
]
MaxInFlight = Annotated[
    int | None,
    _limit(
        "Feed requests worked on at once (default 4); the others wait their turn, and one that "
        "cannot finish before its deadline is refused at once (RESOURCE_EXHAUSTED)"
    ),
]
MaxConcurrentRpcs = Annotated[
    int | None,
    _limit(
        "gRPC calls a server holds at once (default 64, home_mixer 32); more are refused (RESOURCE_EXHAUSTED)"
    ),
]


def _set(config: C, **values: Any) -> C:
    """`config` with the given fields replaced, except those left unset (None)."""
    return dataclasses.replace(config, **{k: v for k, v in values.items() if v is not None})


def ranker_config(
    max_candidates: int | None, max_history: int | None, device: str = "cpu"
) -> RankingHandlerConfig:
    from phoenix.ranker.handler import RankingHandlerConfig

    return _set(RankingHandlerConfig(device=device), max_candidates=max_candidates, max_history=max_history)


def retrieval_config(
    max_history: int | None,
    max_exclusions: int | None,
    max_top_k: int | None,
    max_concurrent_rpcs: int | None = None,
    device: str = "cpu",
) -> RetrievalServiceConfig:
    from phoenix.retrieval.handler import RetrievalHandlerConfig
    from phoenix.retrieval.service import RetrievalServiceConfig

    handler = _set(
        RetrievalHandlerConfig(device=device),
        max_history=max_history,
        max_exclusions=max_exclusions,
        max_top_k=max_top_k,
    )
    return _set(RetrievalServiceConfig(handler=handler), max_concurrent_rpcs=max_concurrent_rpcs)


def thunder_config(base: ThunderConfig, max_ids: int | None, max_request_bytes: int | None) -> ThunderConfig:
    return _set(base, max_input_list_size=max_ids, max_request_bytes=max_request_bytes)


def home_mixer_config(
    base: HomeMixerConfig,
    max_ids: int | None,
    max_in_flight: int | None,
    max_request_bytes: int | None,
    max_concurrent_rpcs: int | None = None,
) -> HomeMixerConfig:
    return _set(
        base,
        limits=_set(base.limits, max_ids_per_request=max_ids),
        admission=_set(base.admission, max_in_flight=max_in_flight),
        max_request_bytes=max_request_bytes,
        max_concurrent_rpcs=max_concurrent_rpcs,
    )
