"""Thunder limits and service settings; defaults are the reference's `config.rs` / `args.rs`."""

from __future__ import annotations

from dataclasses import dataclass, field

from foryou.core.admission import AdmissionConfig
from foryou.core.events import RETENTION_S

MAX_POSTS_TO_RETURN = 1200
MAX_VIDEOS_TO_RETURN = 600
MAX_INPUT_LIST_SIZE = 10_000
MAX_ORIGINAL_POSTS_PER_AUTHOR = 50
MAX_REPLY_POSTS_PER_AUTHOR = 30
MAX_VIDEO_POSTS_PER_AUTHOR = 100
MAX_TINY_POSTS_PER_USER_SCAN = 500
MAX_POSTING_LIST_SIZE = 5000
RETENTION_SECONDS = RETENTION_S
MIN_VIDEO_DURATION_MS = 5000  # feeder-side video eligibility (reference, later versions)


@dataclass(slots=True)
class StoreConfig:
    retention_s: int = RETENTION_SECONDS
    max_originals_per_author: int = MAX_ORIGINAL_POSTS_PER_AUTHOR
    max_replies_per_author: int = MAX_REPLY_POSTS_PER_AUTHOR
    max_videos_per_author: int = MAX_VIDEO_POSTS_PER_AUTHOR
    max_scan_per_author: int = MAX_TINY_POSTS_PER_USER_SCAN
    max_posting_list_size: int = MAX_POSTING_LIST_SIZE


@dataclass(slots=True)
class ThunderConfig:
    store: StoreConfig
    grpc_address: str = "127.0.0.1:0"
    max_concurrent_rpcs: int = 64  # excess answered RESOURCE_EXHAUSTED
    qps_limit: float = 8000.0  # token bucket (reference `qps_limit`); <= 0 disables
    max_input_list_size: int = MAX_INPUT_LIST_SIZE
    # request bodies over this are refused by gRPC before they are read; 0 = the worst-case size of
    # a valid request (`thunder.request.max_request_bytes`)
    max_request_bytes: int = 0
    # deadline-aware admission (foryou/core/admission.py): the handler runs on the event loop
    # without awaiting, one request at a time; a request costs about per_unit x (followed
    # accounts + 100), ~1 ms for 100 accounts on 2 cores until measured
    admission: AdmissionConfig = field(
        default_factory=lambda: AdmissionConfig(max_in_flight=1, initial_cost_s=0.0005, fixed_units=100.0)
    )
    catchup_max_lag: int = 1000  # serve once total lag is below this
    trim_interval_s: float = 120.0
    group_id: str = "thunder"

    @classmethod
    def default(cls, **kw: object) -> ThunderConfig:
        return cls(store=StoreConfig(), **kw)  # type: ignore[arg-type]
