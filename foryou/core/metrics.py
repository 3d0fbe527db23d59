"""Prometheus /metrics HTTP endpoint shared by every service process."""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

from foryou.core.net import free_port

# A dependency that failed open: the feed still answered, with less.
DEGRADED = Counter("foryou_degraded_total", "Requests served without a dependency", ["service", "dependency"])


def start_metrics_server(port: int = 0, addr: str = "127.0.0.1") -> int:
    """Serve /metrics on `port` (0 picks a free one); returns the port."""
    port = port or free_port()
    start_http_server(port, addr=addr)
    return port
