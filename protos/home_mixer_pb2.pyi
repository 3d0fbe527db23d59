from protos import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetScoredPostsRequest(_message.Message):
    __slots__ = ("viewer_id", "seen_ids", "served_ids", "in_network_only", "is_bottom_request", "client_app_id", "country_code", "language_code")
    VIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    SEEN_IDS_FIELD_NUMBER: _ClassVar[int]
    SERVED_IDS_FIELD_NUMBER: _ClassVar[int]
    IN_NETWORK_ONLY_FIELD_NUMBER: _ClassVar[int]
    IS_BOTTOM_REQUEST_FIELD_NUMBER: _ClassVar[int]
    CLIENT_APP_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    viewer_id: int
    seen_ids: _containers.RepeatedScalarFieldContainer[int]
    served_ids: _containers.RepeatedScalarFieldContainer[int]
    in_network_only: bool
    is_bottom_request: bool
    client_app_id: int
    country_code: str
    language_code: str
    def __init__(self, viewer_id: _Optional[int] = ..., seen_ids: _Optional[_Iterable[int]] = ..., served_ids: _Optional[_Iterable[int]] = ..., in_network_only: _Optional[bool] = ..., is_bottom_request: _Optional[bool] = ..., client_app_id: _Optional[int] = ..., country_code: _Optional[str] = ..., language_code: _Optional[str] = ...) -> None: ...

class ScoredPost(_message.Message):
    __slots__ = ("post_id", "author_id", "score", "in_network", "retweeted_post_id", "retweeted_user_id", "in_reply_to_post_id", "conversation_id", "source", "screen_name", "video_carousel")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IN_NETWORK_FIELD_NUMBER: _ClassVar[int]
    RETWEETED_POST_ID_FIELD_NUMBER: _ClassVar[int]
    RETWEETED_USER_ID_FIELD_NUMBER: _ClassVar[int]
    IN_REPLY_TO_POST_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCREEN_NAME_FIELD_NUMBER: _ClassVar[int]
    VIDEO_CAROUSEL_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    score: float
    in_network: bool
    retweeted_post_id: int
    retweeted_user_id: int
    in_reply_to_post_id: int
    conversation_id: int
    source: str
    screen_name: str
    video_carousel: bool
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., score: _Optional[float] = ..., in_network: _Optional[bool] = ..., retweeted_post_id: _Optional[int] = ..., retweeted_user_id: _Optional[int] = ..., in_reply_to_post_id: _Optional[int] = ..., conversation_id: _Optional[int] = ..., source: _Optional[str] = ..., screen_name: _Optional[str] = ..., video_carousel: _Optional[bool] = ...) -> None: ...

class GetScoredPostsResponse(_message.Message):
    __slots__ = ("scored_posts", "request_id", "model_version", "degraded")
    SCORED_POSTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    scored_posts: _containers.RepeatedCompositeFieldContainer[ScoredPost]
    request_id: str
    model_version: str
    degraded: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, scored_posts: _Optional[_Iterable[_Union[ScoredPost, _Mapping]]] = ..., request_id: _Optional[str] = ..., model_version: _Optional[str] = ..., degraded: _Optional[_Iterable[str]] = ...) -> None: ...

class GetDebugScoredPostsRequest(_message.Message):
    __slots__ = ("query", "param_overrides")
    class ParamOverridesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PARAM_OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    query: GetScoredPostsRequest
    param_overrides: _containers.ScalarMap[str, str]
    def __init__(self, query: _Optional[_Union[GetScoredPostsRequest, _Mapping]] = ..., param_overrides: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Multiplier(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class DebugCandidate(_message.Message):
    __slots__ = ("post_id", "author_id", "source", "in_network", "outcome", "filtered_by", "action_probs", "weighted_score", "multipliers", "final_score", "fields", "position")
    class ActionProbsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    IN_NETWORK_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FILTERED_BY_FIELD_NUMBER: _ClassVar[int]
    ACTION_PROBS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_SCORE_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIERS_FIELD_NUMBER: _ClassVar[int]
    FINAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    source: str
    in_network: bool
    outcome: str
    filtered_by: str
    action_probs: _containers.ScalarMap[str, float]
    weighted_score: float
    multipliers: _containers.RepeatedCompositeFieldContainer[Multiplier]
    final_score: float
    fields: _containers.ScalarMap[str, str]
    position: int
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., source: _Optional[str] = ..., in_network: _Optional[bool] = ..., outcome: _Optional[str] = ..., filtered_by: _Optional[str] = ..., action_probs: _Optional[_Mapping[str, float]] = ..., weighted_score: _Optional[float] = ..., multipliers: _Optional[_Iterable[_Union[Multiplier, _Mapping]]] = ..., final_score: _Optional[float] = ..., fields: _Optional[_Mapping[str, str]] = ..., position: _Optional[int] = ...) -> None: ...

class StageSummary(_message.Message):
    __slots__ = ("stage", "component", "latency_ms", "kept", "removed", "error")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    stage: str
    component: str
    latency_ms: float
    kept: int
    removed: int
    error: str
    def __init__(self, stage: _Optional[str] = ..., component: _Optional[str] = ..., latency_ms: _Optional[float] = ..., kept: _Optional[int] = ..., removed: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class GetDebugScoredPostsResponse(_message.Message):
    __slots__ = ("candidates", "stages", "request_id", "model_version", "params", "degraded", "query_features", "experiment_bucket")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class QueryFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    QUERY_FEATURES_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_BUCKET_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[DebugCandidate]
    stages: _containers.RepeatedCompositeFieldContainer[StageSummary]
    request_id: str
    model_version: str
    params: _containers.ScalarMap[str, str]
    degraded: _containers.RepeatedScalarFieldContainer[str]
    query_features: _containers.ScalarMap[str, str]
    experiment_bucket: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[DebugCandidate, _Mapping]]] = ..., stages: _Optional[_Iterable[_Union[StageSummary, _Mapping]]] = ..., request_id: _Optional[str] = ..., model_version: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., degraded: _Optional[_Iterable[str]] = ..., query_features: _Optional[_Mapping[str, str]] = ..., experiment_bucket: _Optional[str] = ...) -> None: ...

class LogEngagementsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.EngagementEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.EngagementEvent, _Mapping]]] = ...) -> None: ...

class LogEngagementsResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    def __init__(self, accepted: _Optional[int] = ...) -> None: ...
