from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActionName(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVALID: _ClassVar[ActionName]
    SERVER_TWEET_FAV: _ClassVar[ActionName]
    SERVER_TWEET_UNFAV: _ClassVar[ActionName]
    SERVER_TWEET_CREATE: _ClassVar[ActionName]
    SERVER_TWEET_REPLY: _ClassVar[ActionName]
    SERVER_TWEET_QUOTE: _ClassVar[ActionName]
    SERVER_TWEET_RETWEET: _ClassVar[ActionName]
    SERVER_TWEET_UNREPLY: _ClassVar[ActionName]
    SERVER_TWEET_UNQUOTE: _ClassVar[ActionName]
    SERVER_TWEET_UNRETWEET: _ClassVar[ActionName]
    SERVER_TWEET_REPORT: _ClassVar[ActionName]
    CLIENT_TWEET_RECAP_DWELLED: _ClassVar[ActionName]
    CLIENT_TWEET_RECAP_NOT_DWELLED: _ClassVar[ActionName]
    CLIENT_TWEET_VIDEO_QUALITY_VIEW: _ClassVar[ActionName]
    CLIENT_TWEET_PHOTO_EXPAND: _ClassVar[ActionName]
    CLIENT_TWEET_CLICK_MENTION_SCREEN_NAME: _ClassVar[ActionName]
    CLIENT_TWEET_REPORT: _ClassVar[ActionName]
    CLIENT_TWEET_NOT_INTERESTED_IN: _ClassVar[ActionName]
    CLIENT_TWEET_UNDO_NOT_INTERESTED_IN: _ClassVar[ActionName]
    CLIENT_TWEET_SEE_FEWER: _ClassVar[ActionName]
    CLIENT_TWEET_UNDO_SEE_FEWER: _ClassVar[ActionName]
    CLIENT_TWEET_FOLLOW_AUTHOR: _ClassVar[ActionName]
    CLIENT_TWEET_UNFOLLOW_AUTHOR: _ClassVar[ActionName]
    CLIENT_TWEET_BLOCK_AUTHOR: _ClassVar[ActionName]
    CLIENT_TWEET_UNBLOCK_AUTHOR: _ClassVar[ActionName]
    CLIENT_TWEET_MUTE_AUTHOR: _ClassVar[ActionName]
    CLIENT_TWEET_UNMUTE_AUTHOR: _ClassVar[ActionName]
    CLIENT_TWEET_MUTE_CONVERSATION: _ClassVar[ActionName]
    CLIENT_TWEET_UNMUTE_CONVERSATION: _ClassVar[ActionName]
    CLIENT_TWEET_CLICK: _ClassVar[ActionName]
    CLIENT_TWEET_CLICK_PROFILE: _ClassVar[ActionName]
    CLIENT_TWEET_CLICK_SHARE: _ClassVar[ActionName]
    CLIENT_TWEET_SHARE_VIA_COPY_LINK: _ClassVar[ActionName]
    CLIENT_TWEET_CLICK_SEND_VIA_DIRECT_MESSAGE: _ClassVar[ActionName]
    CLIENT_TWEET_UNBOOKMARK: _ClassVar[ActionName]
    CLIENT_TWEET_CLICK_HASHTAG: _ClassVar[ActionName]
    CLIENT_TWEET_BOOKMARK: _ClassVar[ActionName]
    CLIENT_TWEET_SHARE: _ClassVar[ActionName]
    CLIENT_QUOTED_TWEET_CLICK: _ClassVar[ActionName]
    CLIENT_TWEET_OPEN_LINK: _ClassVar[ActionName]
    CLIENT_TWEET_TAKE_SCREENSHOT: _ClassVar[ActionName]
    CLIENT_TWEET_TRANSLATE_CLICK: _ClassVar[ActionName]
    CLIENT_TWEET_NOT_RELEVANT: _ClassVar[ActionName]
    CLIENT_TWEET_UNDO_NOT_RELEVANT: _ClassVar[ActionName]
    CLIENT_TWEET_CARD_CLICK: _ClassVar[ActionName]
    CLIENT_TWEET_SHOW_MORE_EXPAND: _ClassVar[ActionName]
    CLIENT_TWEET_CLICK_GROK_ANALYZE: _ClassVar[ActionName]
    CLIENT_TWEET_VIDEO_OPEN: _ClassVar[ActionName]
    CLIENT_QUOTED_TWEET_VIDEO_QUALITY_VIEW: _ClassVar[ActionName]
    CLIENT_QUOTED_TWEET_PHOTO_EXPAND: _ClassVar[ActionName]
    NOTIFICATION_OPEN: _ClassVar[ActionName]
    NOTIFICATION_CLICK: _ClassVar[ActionName]
    NOTIFICATION_SEE_LESS_OFTEN: _ClassVar[ActionName]
    NOTIFICATION_DISMISS: _ClassVar[ActionName]
    APP_ENTER: _ClassVar[ActionName]
    APP_EXIT: _ClassVar[ActionName]
    NOTIFICATION_IMPRESSION: _ClassVar[ActionName]
    PROFILE_CLICK: _ClassVar[ActionName]
    NOTIFICATION_SENT: _ClassVar[ActionName]
    SERVER_TWEET_POST_UNEXPLORED: _ClassVar[ActionName]
    EXTERNAL_LINK_LONG_DWELLED: _ClassVar[ActionName]
    SERVER_PROFILE_FOLLOW: _ClassVar[ActionName]
    SERVER_PROFILE_UNFOLLOW: _ClassVar[ActionName]
    SERVER_PROFILE_BLOCK: _ClassVar[ActionName]
    IMPRESSION: _ClassVar[ActionName]

class ContinuousActionName(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTINUOUS_UNUSED: _ClassVar[ContinuousActionName]
    DWELL_TIME: _ClassVar[ContinuousActionName]
    CLICK_DWELL_TIME: _ClassVar[ContinuousActionName]
    ACTIVE_SECS_5M_RESIDUAL_NORM: _ClassVar[ContinuousActionName]
    BRIDGE_PROBABILITY: _ClassVar[ContinuousActionName]
    ADS_WEB_CT_PURCHASE_VALUE: _ClassVar[ContinuousActionName]

class ProductSurface(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRODUCT_SURFACE_UNSPECIFIED: _ClassVar[ProductSurface]
    PRODUCT_SURFACE_HOME_TIMELINE: _ClassVar[ProductSurface]
    PRODUCT_SURFACE_SEARCH: _ClassVar[ProductSurface]
    PRODUCT_SURFACE_PROFILE: _ClassVar[ProductSurface]
    PRODUCT_SURFACE_CONVERSATION: _ClassVar[ProductSurface]
    PRODUCT_SURFACE_NOTIFICATIONS: _ClassVar[ProductSurface]
    PRODUCT_SURFACE_EXPLORE: _ClassVar[ProductSurface]
    PRODUCT_SURFACE_GALLERY: _ClassVar[ProductSurface]
    PRODUCT_SURFACE_RANKED_FOLLOWING: _ClassVar[ProductSurface]

class UserEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USER_EVENT_UNSPECIFIED: _ClassVar[UserEventType]
    USER_EVENT_FOLLOW: _ClassVar[UserEventType]
    USER_EVENT_UNFOLLOW: _ClassVar[UserEventType]
    USER_EVENT_BLOCK: _ClassVar[UserEventType]
    USER_EVENT_UNBLOCK: _ClassVar[UserEventType]
    USER_EVENT_MUTE: _ClassVar[UserEventType]
    USER_EVENT_UNMUTE: _ClassVar[UserEventType]
    USER_EVENT_MUTED_KEYWORD_ADD: _ClassVar[UserEventType]
    USER_EVENT_MUTED_KEYWORD_REMOVE: _ClassVar[UserEventType]
    USER_EVENT_SUBSCRIBE: _ClassVar[UserEventType]
    USER_EVENT_UNSUBSCRIBE: _ClassVar[UserEventType]
    USER_EVENT_PROFILE: _ClassVar[UserEventType]
INVALID: ActionName
SERVER_TWEET_FAV: ActionName
SERVER_TWEET_UNFAV: ActionName
SERVER_TWEET_CREATE: ActionName
SERVER_TWEET_REPLY: ActionName
SERVER_TWEET_QUOTE: ActionName
SERVER_TWEET_RETWEET: ActionName
SERVER_TWEET_UNREPLY: ActionName
SERVER_TWEET_UNQUOTE: ActionName
SERVER_TWEET_UNRETWEET: ActionName
SERVER_TWEET_REPORT: ActionName
CLIENT_TWEET_RECAP_DWELLED: ActionName
CLIENT_TWEET_RECAP_NOT_DWELLED: ActionName
CLIENT_TWEET_VIDEO_QUALITY_VIEW: ActionName
CLIENT_TWEET_PHOTO_EXPAND: ActionName
CLIENT_TWEET_CLICK_MENTION_SCREEN_NAME: ActionName
CLIENT_TWEET_REPORT: ActionName
CLIENT_TWEET_NOT_INTERESTED_IN: ActionName
CLIENT_TWEET_UNDO_NOT_INTERESTED_IN: ActionName
CLIENT_TWEET_SEE_FEWER: ActionName
CLIENT_TWEET_UNDO_SEE_FEWER: ActionName
CLIENT_TWEET_FOLLOW_AUTHOR: ActionName
CLIENT_TWEET_UNFOLLOW_AUTHOR: ActionName
CLIENT_TWEET_BLOCK_AUTHOR: ActionName
CLIENT_TWEET_UNBLOCK_AUTHOR: ActionName
CLIENT_TWEET_MUTE_AUTHOR: ActionName
CLIENT_TWEET_UNMUTE_AUTHOR: ActionName
CLIENT_TWEET_MUTE_CONVERSATION: ActionName
CLIENT_TWEET_UNMUTE_CONVERSATION: ActionName
CLIENT_TWEET_CLICK: ActionName
CLIENT_TWEET_CLICK_PROFILE: ActionName
CLIENT_TWEET_CLICK_SHARE: ActionName
CLIENT_TWEET_SHARE_VIA_COPY_LINK: ActionName
CLIENT_TWEET_CLICK_SEND_VIA_DIRECT_MESSAGE: ActionName
CLIENT_TWEET_UNBOOKMARK: ActionName
CLIENT_TWEET_CLICK_HASHTAG: ActionName
CLIENT_TWEET_BOOKMARK: ActionName
CLIENT_TWEET_SHARE: ActionName
CLIENT_QUOTED_TWEET_CLICK: ActionName
CLIENT_TWEET_OPEN_LINK: ActionName
CLIENT_TWEET_TAKE_SCREENSHOT: ActionName
CLIENT_TWEET_TRANSLATE_CLICK: ActionName
CLIENT_TWEET_NOT_RELEVANT: ActionName
CLIENT_TWEET_UNDO_NOT_RELEVANT: ActionName
CLIENT_TWEET_CARD_CLICK: ActionName
CLIENT_TWEET_SHOW_MORE_EXPAND: ActionName
CLIENT_TWEET_CLICK_GROK_ANALYZE: ActionName
CLIENT_TWEET_VIDEO_OPEN: ActionName
CLIENT_QUOTED_TWEET_VIDEO_QUALITY_VIEW: ActionName
CLIENT_QUOTED_TWEET_PHOTO_EXPAND: ActionName
NOTIFICATION_OPEN: ActionName
NOTIFICATION_CLICK: ActionName
NOTIFICATION_SEE_LESS_OFTEN: ActionName
NOTIFICATION_DISMISS: ActionName
APP_ENTER: ActionName
APP_EXIT: ActionName
NOTIFICATION_IMPRESSION: ActionName
PROFILE_CLICK: ActionName
NOTIFICATION_SENT: ActionName
SERVER_TWEET_POST_UNEXPLORED: ActionName
EXTERNAL_LINK_LONG_DWELLED: ActionName
SERVER_PROFILE_FOLLOW: ActionName
SERVER_PROFILE_UNFOLLOW: ActionName
SERVER_PROFILE_BLOCK: ActionName
IMPRESSION: ActionName
CONTINUOUS_UNUSED: ContinuousActionName
DWELL_TIME: ContinuousActionName
CLICK_DWELL_TIME: ContinuousActionName
ACTIVE_SECS_5M_RESIDUAL_NORM: ContinuousActionName
BRIDGE_PROBABILITY: ContinuousActionName
ADS_WEB_CT_PURCHASE_VALUE: ContinuousActionName
PRODUCT_SURFACE_UNSPECIFIED: ProductSurface
PRODUCT_SURFACE_HOME_TIMELINE: ProductSurface
PRODUCT_SURFACE_SEARCH: ProductSurface
PRODUCT_SURFACE_PROFILE: ProductSurface
PRODUCT_SURFACE_CONVERSATION: ProductSurface
PRODUCT_SURFACE_NOTIFICATIONS: ProductSurface
PRODUCT_SURFACE_EXPLORE: ProductSurface
PRODUCT_SURFACE_GALLERY: ProductSurface
PRODUCT_SURFACE_RANKED_FOLLOWING: ProductSurface
USER_EVENT_UNSPECIFIED: UserEventType
USER_EVENT_FOLLOW: UserEventType
USER_EVENT_UNFOLLOW: UserEventType
USER_EVENT_BLOCK: UserEventType
USER_EVENT_UNBLOCK: UserEventType
USER_EVENT_MUTE: UserEventType
USER_EVENT_UNMUTE: UserEventType
USER_EVENT_MUTED_KEYWORD_ADD: UserEventType
USER_EVENT_MUTED_KEYWORD_REMOVE: UserEventType
USER_EVENT_SUBSCRIBE: UserEventType
USER_EVENT_UNSUBSCRIBE: UserEventType
USER_EVENT_PROFILE: UserEventType

class Post(_message.Message):
    __slots__ = ("post_id", "author_id", "created_at", "in_reply_to_post_id", "in_reply_to_user_id", "is_retweet", "is_reply", "source_post_id", "source_user_id", "has_video", "conversation_id", "text", "video_duration_ms", "subscriber_only", "labels", "quoted_post_id", "quoted_user_id", "video_aspect_ratio")
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
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ONLY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    QUOTED_POST_ID_FIELD_NUMBER: _ClassVar[int]
    QUOTED_USER_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ASPECT_RATIO_FIELD_NUMBER: _ClassVar[int]
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
    text: str
    video_duration_ms: int
    subscriber_only: bool
    labels: _containers.RepeatedScalarFieldContainer[str]
    quoted_post_id: int
    quoted_user_id: int
    video_aspect_ratio: float
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., created_at: _Optional[int] = ..., in_reply_to_post_id: _Optional[int] = ..., in_reply_to_user_id: _Optional[int] = ..., is_retweet: _Optional[bool] = ..., is_reply: _Optional[bool] = ..., source_post_id: _Optional[int] = ..., source_user_id: _Optional[int] = ..., has_video: _Optional[bool] = ..., conversation_id: _Optional[int] = ..., text: _Optional[str] = ..., video_duration_ms: _Optional[int] = ..., subscriber_only: _Optional[bool] = ..., labels: _Optional[_Iterable[str]] = ..., quoted_post_id: _Optional[int] = ..., quoted_user_id: _Optional[int] = ..., video_aspect_ratio: _Optional[float] = ...) -> None: ...

class PostDelete(_message.Message):
    __slots__ = ("post_id", "author_id", "deleted_at_ms")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    post_id: int
    author_id: int
    deleted_at_ms: int
    def __init__(self, post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., deleted_at_ms: _Optional[int] = ...) -> None: ...

class PostEvent(_message.Message):
    __slots__ = ("create", "delete")
    CREATE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    create: Post
    delete: PostDelete
    def __init__(self, create: _Optional[_Union[Post, _Mapping]] = ..., delete: _Optional[_Union[PostDelete, _Mapping]] = ...) -> None: ...

class EngagementEvent(_message.Message):
    __slots__ = ("user_id", "post_id", "author_id", "action", "timestamp_ms", "product_surface", "dwell_ms")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SURFACE_FIELD_NUMBER: _ClassVar[int]
    DWELL_MS_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    post_id: int
    author_id: int
    action: ActionName
    timestamp_ms: int
    product_surface: ProductSurface
    dwell_ms: int
    def __init__(self, user_id: _Optional[int] = ..., post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., action: _Optional[_Union[ActionName, str]] = ..., timestamp_ms: _Optional[int] = ..., product_surface: _Optional[_Union[ProductSurface, str]] = ..., dwell_ms: _Optional[int] = ...) -> None: ...

class UserEvent(_message.Message):
    __slots__ = ("user_id", "type", "target_user_id", "keyword", "timestamp_ms", "screen_name")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_USER_ID_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    SCREEN_NAME_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    type: UserEventType
    target_user_id: int
    keyword: str
    timestamp_ms: int
    screen_name: str
    def __init__(self, user_id: _Optional[int] = ..., type: _Optional[_Union[UserEventType, str]] = ..., target_user_id: _Optional[int] = ..., keyword: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., screen_name: _Optional[str] = ...) -> None: ...

class ServedEvent(_message.Message):
    __slots__ = ("viewer_id", "post_id", "author_id", "position", "score", "request_id", "model_version", "served_at_ms", "in_network", "source", "retrieval_model_version", "action_probs", "predicted_dwell_s", "weighted_score", "experiment_bucket", "product_surface")
    VIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    IN_NETWORK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_PROBS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_DWELL_S_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_SCORE_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_BUCKET_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SURFACE_FIELD_NUMBER: _ClassVar[int]
    viewer_id: int
    post_id: int
    author_id: int
    position: int
    score: float
    request_id: str
    model_version: str
    served_at_ms: int
    in_network: bool
    source: str
    retrieval_model_version: str
    action_probs: _containers.RepeatedScalarFieldContainer[float]
    predicted_dwell_s: float
    weighted_score: float
    experiment_bucket: str
    product_surface: ProductSurface
    def __init__(self, viewer_id: _Optional[int] = ..., post_id: _Optional[int] = ..., author_id: _Optional[int] = ..., position: _Optional[int] = ..., score: _Optional[float] = ..., request_id: _Optional[str] = ..., model_version: _Optional[str] = ..., served_at_ms: _Optional[int] = ..., in_network: _Optional[bool] = ..., source: _Optional[str] = ..., retrieval_model_version: _Optional[str] = ..., action_probs: _Optional[_Iterable[float]] = ..., predicted_dwell_s: _Optional[float] = ..., weighted_score: _Optional[float] = ..., experiment_bucket: _Optional[str] = ..., product_surface: _Optional[_Union[ProductSurface, str]] = ...) -> None: ...
