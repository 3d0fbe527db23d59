from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LightPost(_message.Message):
    __slots__ = ("post_id", "author_id", "created_at", "in_reply_to_post_id", "in_reply_to_user_id", "is_retweet", "is_reply", "source_post_id", "source_user_id", "has_video", "conversation_id")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    IN_REPLY_TO_POST_ID_FIELD_NUMBER: _ClassVar[int]
    IN_REPLY_TO_USER_ID_FIELD_NUMBER: _ClassVar[int]
    IS_RETWEET_FIELD_NUMBER: _ClassVar[int]
    IS_REPLY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_POST_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_USER_ID_FIELD_NUMBER: _ClassVar[int]
    HAS_VIDEO_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    created_at: int
    in_reply_to_post_id: int
    in_reply_to_user_id: int
    is_retweet: bool
    is_reply: bool
    source_post_id: int
    source_user_id: int
    has_video: bool
    conversation_id: int
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., created_at: _Optional[int] = ..., in_reply_to_post_id: _Optional[int] = ..., in_reply_to_user_id: _Optional[int] = ..., is_retweet: _Optional[bool] = ..., is_reply: _Optional[bool] = ..., source_post_id: _Optional[int] = ..., source_user_id: _Optional[int] = ..., has_video: _Optional[bool] = ..., conversation_id: _Optional[int] = ...) -> None: ...

class PerAuthorLimits(_message.Message):
    __slots__ = ("max_posts_per_author", "max_replies_reposts_per_author")
    MAX_POSTS_PER_AUTHOR_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLIES_REPOSTS_PER_AUTHOR_FIELD_NUMBER: _ClassVar[int]
    max_posts_per_author: int
    max_replies_reposts_per_author: int
    def __init__(self, max_posts_per_author: _Optional[int] = ..., max_replies_reposts_per_author: _Optional[int] = ...) -> None: ...

class GetInNetworkPostsRequest(_message.Message):
    __slots__ = ("user_id", "following_user_ids", "exclude_post_ids", "max_results", "is_video_request", "algorithm", "per_author_limits")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOWING_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_POST_IDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    IS_VIDEO_REQUEST_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PER_AUTHOR_LIMITS_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    following_user_ids: _containers.RepeatedScalarFieldContainer[int]
    exclude_post_ids: _containers.RepeatedScalarFieldContainer[int]
    max_results: int
    is_video_request: bool
    algorithm: str
    per_author_limits: PerAuthorLimits
    def __init__(self, user_id: _Optional[int] = ..., following_user_ids: _Optional[_Iterable[int]] = ..., exclude_post_ids: _Optional[_Iterable[int]] = ..., max_results: _Optional[int] = ..., is_video_request: _Optional[bool] = ..., algorithm: _Optional[str] = ..., per_author_limits: _Optional[_Union[PerAuthorLimits, _Mapping]] = ...) -> None: ...

class GetInNetworkPostsResponse(_message.Message):
    __slots__ = ("posts", "stale")
    POSTS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    posts: _containers.RepeatedCompositeFieldContainer[LightPost]
    stale: bool
    def __init__(self, posts: _Optional[_Iterable[_Union[LightPost, _Mapping]]] = ..., stale: _Optional[bool] = ...) -> None: ...
