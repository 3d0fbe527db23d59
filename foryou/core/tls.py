"""TLS (and mTLS) for gRPC: server credentials and client channels from Settings.

All or nothing per process: as soon as any `tls_*` setting is given, every server serves TLS only
(certificate and key required) and every client channel is TLS, verifying servers against
`tls_ca` (the system roots when unset). With `tls_client_auth`, servers also require a client
certificate signed by `tls_ca`; clients present `tls_client_cert` / `tls_client_key`. A half
configuration is an error naming the setting, never a silent fall back to plaintext."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import grpc

from foryou.core.settings import ENV_PREFIX, Settings

_FILES = ("tls_cert", "tls_key", "tls_ca", "tls_client_cert", "tls_client_key")


class TlsConfigError(ValueError):
    """A TLS setting that is missing, unreadable or not PEM; the message names its env var."""


def _env(name: str) -> str:
    return ENV_PREFIX + name.upper()


def tls_enabled(settings: Settings) -> bool:
    return settings.tls_client_auth or any(getattr(settings, name) for name in _FILES)


def _read(settings: Settings, name: str, needed_for: str = "") -> bytes:
    path = getattr(settings, name)
    if not path:
        raise TlsConfigError(f"{_env(name)} is required {needed_for}")
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TlsConfigError(f"{_env(name)}={path}: cannot read ({e.strerror or e})") from None
    if b"-----BEGIN " not in data:  # grpc's own error for a bad file is a bare handshake failure
        raise TlsConfigError(f"{_env(name)}={path}: not a PEM file")
    return data


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Credentials for `add_secure_port`, or None when TLS is off (plaintext)."""
    if not tls_enabled(settings):
        return None
    why = "for a TLS server (TLS is on: some FORYOU_TLS_* setting is given)"
    cert = _read(settings, "tls_cert", why)
    key = _read(settings, "tls_key", why)
    ca = None
    if settings.tls_client_auth:
        ca = _read(
            settings, "tls_ca", "with FORYOU_TLS_CLIENT_AUTH (client certificates are checked against it)"
        )
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=settings.tls_client_auth
    )


def check(settings: Settings) -> None:
    """Every TLS file that is set must be readable PEM and every pair complete. A service process
    calls this as it starts, so a typo fails in seconds, not after a model load or index build."""
    channel_credentials(settings)
    if settings.tls_cert or settings.tls_key or settings.tls_client_auth:
        server_credentials(settings)


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """Credentials for a client channel, or None when TLS is off (plaintext)."""
    if not tls_enabled(settings):
        return None
    ca = _read(settings, "tls_ca") if settings.tls_ca else None
    key = cert = None
    if settings.tls_client_cert or settings.tls_client_key:
        why = "with FORYOU_TLS_CLIENT_CERT / FORYOU_TLS_CLIENT_KEY (they go together)"
        cert = _read(settings, "tls_client_cert", why)
        key = _read(settings, "tls_client_key", why)
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


@overload
def channel(
    address: str,
    settings: Settings | None,
    *,
    aio: Literal[False] = False,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel: ...


@overload
def channel(
    address: str, settings: Settings | None, *, aio: Literal[True], options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel: ...


def channel(
    address: str, settings: Settings | None, *, aio: bool = False, options: Sequence[tuple[str, Any]] = ()
) -> Any:
    """The one way our clients open a channel to `address`: TLS when `settings` configure it,
    else plaintext (also for None: tests, benches). `aio` gives a grpc.aio channel (bound to the
    running event loop). `address` may name several replicas (`replicas_target`): then calls are
    spread round-robin and one refused by a replica that is down is retried on another."""
    target, balanced = replicas_target(address)
    opts = list(options)
    if balanced:
        opts += [("grpc.service_config", REPLICAS_SERVICE_CONFIG), ("grpc.enable_retries", 1)]
    creds = None if settings is None else channel_credentials(settings)
    factory: Any = grpc.aio if aio else grpc
    if creds is None:
        return factory.insecure_channel(target, options=opts)
    return factory.secure_channel(target, creds, options=opts)


# Several replicas behind one channel (gRPC's own machinery, no proxy): the `round_robin` policy
# keeps a connection to every address the resolver gives and spreads calls over the ready ones; a
# call that fails UNAVAILABLE (replica down, or killed with the call in flight) is retried, up to
# 4 attempts in all, and round_robin picks another replica. The calls our channels carry are
# reads (Thunder, retrieval, ranker, a feed) or idempotent; a retried LogEngagements batch may be
# logged twice (at-least-once, as a client retry would).
REPLICAS_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.02s",
                    "maxBackoff": "0.2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


def replicas_target(address: str) -> tuple[str, bool]:
    """(gRPC target, balanced) for an address setting. Forms:
      host:port                       one backend (as before; not balanced)
      10.0.0.1:50051,10.0.0.2:50051   several replicas by IP ("ipv4:" / "ipv6:" target)
      dns:///name:port                every address the name resolves to (re-resolved as replicas
                                      come and go: a headless service, round-robin DNS)
      ipv4:... / ipv6:... / unix:...  any gRPC target URI, as is
    A list of host names is refused: give one DNS name instead."""
    address = address.strip()
    if "," not in address:
        return address, address.startswith(("dns:", "ipv4:", "ipv6:"))
    if address.startswith(("ipv4:", "ipv6:")):
        return address, True
    parts = [a.strip() for a in address.split(",") if a.strip()]
    hosts = [a.rpartition(":")[0] for a in parts]
    try:
        families = {ipaddress.ip_address(h.strip("[]")).version for h in hosts}
    except ValueError:
        raise ValueError(
            f"{address!r}: a list of replicas must be IP:port pairs; for host names use one DNS "
            "name that resolves to every replica (dns:///name:port)"
        ) from None
    if len(families) != 1:
        raise ValueError(f"{address!r}: mixes IPv4 and IPv6 addresses")
    return f"ipv{families.pop()}:" + ",".join(parts), True
