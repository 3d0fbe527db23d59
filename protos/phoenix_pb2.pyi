from protos import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HistoryItem(_message.Message):
    __slots__ = ("post_id", "author_id", "action_mask", "product_surface", "timestamp_ms", "dwell_ms")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_MASK_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SURFACE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    DWELL_MS_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    action_mask: int
    product_surface: _events_pb2.ProductSurface
    timestamp_ms: int
    dwell_ms: int
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., action_mask: _Optional[int] = ..., product_surface: _Optional[_Union[_events_pb2.ProductSurface, str]] = ..., timestamp_ms: _Optional[int] = ..., dwell_ms: _Optional[int] = ...) -> None: ...

class ActionSequence(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[HistoryItem]
    def __init__(self, items: _Optional[_Iterable[_Union[HistoryItem, _Mapping]]] = ...) -> None: ...

class RetrieveRequest(_message.Message):
    __slots__ = ("user_id", "action_sequence", "top_k", "exclude_post_ids")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_POST_IDS_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    action_sequence: ActionSequence
    top_k: int
    exclude_post_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, user_id: _Optional[int] = ..., action_sequence: _Optional[_Union[ActionSequence, _Mapping]] = ..., top_k: _Optional[int] = ..., exclude_post_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class RetrievedCandidate(_message.Message):
    __slots__ = ("post_id", "author_id", "score")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    score: float
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class RetrieveResponse(_message.Message):
    __slots__ = ("candidates", "model_version", "stale")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[RetrievedCandidate]
    model_version: str
    stale: bool
    def __init__(self, candidates: _Optional[_Iterable[_Union[RetrievedCandidate, _Mapping]]] = ..., model_version: _Optional[str] = ..., stale: _Optional[bool] = ...) -> None: ...

class RankCandidate(_message.Message):
    __slots__ = ("post_id", "author_id", "product_surface")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SURFACE_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    product_surface: _events_pb2.ProductSurface
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., product_surface: _Optional[_Union[_events_pb2.ProductSurface, str]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("user_id", "action_sequence", "candidates", "model_version")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    action_sequence: ActionSequence
    candidates: _containers.RepeatedCompositeFieldContainer[RankCandidate]
    model_version: str
    def __init__(self, user_id: _Optional[int] = ..., action_sequence: _Optional[_Union[ActionSequence, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[RankCandidate, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class CandidatePrediction(_message.Message):
    __slots__ = ("post_id", "action_probs", "continuous")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_PROBS_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    action_probs: _containers.RepeatedScalarFieldContainer[float]
    continuous: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, post_id: _Optional[int] = ..., action_probs: _Optional[_Iterable[float]] = ..., continuous: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions", "model_version")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[CandidatePrediction]
    model_version: str
    def __init__(self, predictions: _Optional[_Iterable[_Union[CandidatePrediction, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class ReloadModelRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class ReloadModelResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    def __init__(self, model_version: _Optional[str] = ...) -> None: ...
