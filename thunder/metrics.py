"""Thunder's Prometheus metrics (consumer lag and malformed counts come from foryou.core.kafka)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

POSTS = Gauge("thunder_posts_in_store", "Posts held in memory")
AUTHORS = Gauge("thunder_authors_in_store", "Authors with at least one recency list")
TOMBSTONES = Gauge("thunder_tombstones", "Deleted post ids remembered until retention expiry")
BYTES = Gauge("thunder_store_bytes_estimate", "Estimated store memory")
INGESTED = Counter("thunder_ingested_events_total", "Post events applied", ["kind"])
REQUEST_SECONDS = Histogram(
    "thunder_get_in_network_posts_seconds",
    "GetInNetworkPosts latency",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)
RETURNED = Histogram("thunder_posts_returned", "Posts per response", buckets=(0, 10, 50, 100, 300, 600, 1200))
REJECTED = Counter("thunder_rejected_requests_total", "Requests refused", ["reason"])
INIT_SECONDS = Gauge("thunder_init_duration_seconds", "Startup replay until caught up (then SERVING)")
IN_FLIGHT = Gauge("thunder_in_flight_requests", "GetInNetworkPosts calls being handled")
TRIM_SECONDS = Histogram(
    "thunder_trim_seconds", "Retention trim duration", buckets=(0.01, 0.05, 0.1, 0.5, 1, 5)
)


def update_store_gauges(store: object) -> None:
    POSTS.set(store.num_posts)  # type: ignore[attr-defined]
    AUTHORS.set(store.num_authors)  # type: ignore[attr-defined]
    TOMBSTONES.set(store.num_tombstones)  # type: ignore[attr-defined]
    BYTES.set(store.bytes_estimate())  # type: ignore[attr-defined]
