"""gRPC TLS and mTLS with real servers: the Thunder service over TLS reached through home_mixer's
client class, a `foryou serve phoenix` process that requires client certificates, plaintext and
untrusted clients refused, and a bad TLS configuration named in its error.

`pki` is the throwaway CA and certificates of conftest.py (typed Any: tests cannot import it)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from foryou.core import tls
from foryou.core.grpc_server import wait_serving
from foryou.core.kafka import make_producer
from foryou.core.net import free_port
from foryou.core.settings import Settings
from foryou.core.snowflake import make_id
from home_mixer.clients import GrpcRankingClient, build_clients_from_addresses
from phoenix.ranker.checkpoint import save_model
from phoenix.ranker.config import RankerConfig
from phoenix.ranker.model import RankerModel
from phoenix.ranker.servicer import SERVICE_NAME as RANKING
from protos import events_pb2 as ev
from protos import phoenix_pb2
from thunder.config import ThunderConfig
from thunder.request import make_request
from thunder.service import ThunderService
from thunder.servicer import SERVICE_NAME as THUNDER

REFUSED = {grpc.StatusCode.UNAVAILABLE}  # a failed handshake: the call never reaches the service


def _health_code(address: str, settings: Settings, service: str) -> grpc.StatusCode:
    """The status of one health check at `address` over a channel made from `settings`."""
    with tls.channel(address, settings) as ch:
        try:
            r = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            )
        except grpc.RpcError as e:
            return e.code()
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    return grpc.StatusCode.OK


def _plaintext_code(address: str, service: str) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as ch:
        try:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def test_settings_from_env_and_errors_that_name_the_setting(pki: Any, tmp_path: Path) -> None:
    s = Settings.from_env({"FORYOU_TLS_CERT": pki.server_cert, "FORYOU_TLS_CLIENT_AUTH": "1"})
    assert s.tls_cert == pki.server_cert and s.tls_client_auth
    assert tls.server_credentials(Settings()) is None and tls.channel_credentials(Settings()) is None
    assert tls.server_credentials(pki.server(client_auth=True)) is not None
    assert tls.channel_credentials(pki.client()) is not None

    missing = str(tmp_path / "nope.pem")
    with pytest.raises(tls.TlsConfigError, match=f"FORYOU_TLS_CERT={missing}: cannot read"):
        tls.server_credentials(pki.server().replace(tls_cert=missing))
    with pytest.raises(tls.TlsConfigError, match="FORYOU_TLS_CERT is required for a TLS server"):
        tls.server_credentials(Settings(tls_ca=pki.ca))  # TLS on, but no server certificate
    with pytest.raises(tls.TlsConfigError, match="FORYOU_TLS_CA is required with FORYOU_TLS_CLIENT_AUTH"):
        tls.server_credentials(pki.server(client_auth=True).replace(tls_ca=""))
    with pytest.raises(tls.TlsConfigError, match="FORYOU_TLS_CLIENT_KEY is required"):
        tls.channel_credentials(pki.client(cert=pki.client_cert))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(tls.TlsConfigError, match="FORYOU_TLS_CA=.*junk.pem: not a PEM file"):
        tls.channel(address="127.0.0.1:1", settings=pki.client(ca=str(tmp_path / "junk.pem")))


def test_thunder_serves_tls_only_and_home_mixer_reaches_it(settings: Settings, pki: Any) -> None:
    """(a) TLS server + TLS client: SERVING and answers through GrpcThunderClient; (b) a plaintext
    client and a client that does not trust the server's CA are refused."""
    now_ms = int(time.time() * 1000)
    post_id = make_id(now_ms, 1)
    producer = make_producer(settings)
    post = ev.Post(post_id=post_id, author_id=10, created_at=now_ms // 1000)
    producer.produce(settings.topic("posts"), key=b"10", value=ev.PostEvent(create=post).SerializeToString())
    assert producer.flush(10) == 0
    server = pki.server(settings)

    async def run() -> None:
        svc = ThunderService(server, ThunderConfig.default(catchup_max_lag=0))
        await svc.start()
        try:
            await svc.wait_caught_up(30)
            await asyncio.to_thread(wait_serving, svc.address, THUNDER, 30.0, pki.client())
            dead = f"127.0.0.1:{free_port()}"
            clients = build_clients_from_addresses(svc.address, dead, dead, server)
            try:
                resp = await clients.thunder.get_in_network_posts(make_request(5, [10]))
            finally:
                await clients.close()
            assert [p.post_id for p in resp.posts] == [post_id]
            assert await asyncio.to_thread(_plaintext_code, svc.address, THUNDER) in REFUSED
            untrusting = pki.client(ca=pki.rogue_ca)
            assert await asyncio.to_thread(_health_code, svc.address, untrusting, THUNDER) in REFUSED
        finally:
            await svc.stop()

    asyncio.run(run())


def _phoenix_env(tmp_path: Path, **tls_env: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORYOU_")}
    env["FORYOU_DATA_DIR"] = str(tmp_path / "data")
    env["COLUMNS"] = "500"  # the CLI's error panel wraps at the terminal width
    env.update(tls_env)
    return env


def _serve_phoenix(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    torch.manual_seed(0)
    save_model(tmp_path / "ranker", RankerModel(RankerConfig.tiny(num_layers=1)), step=1)
    address = f"127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-c", "from foryou.app.cli import app; app()", "serve", "phoenix"]
    cmd += ["--ranker-model", str(tmp_path / "ranker"), "--ranker-address", address]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, address


@pytest.fixture
def mtls_phoenix(tmp_path: Path, pki: Any) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`foryou serve phoenix` as a real process requiring client certificates (env FORYOU_TLS_*)."""
    env = _phoenix_env(
        tmp_path,
        FORYOU_TLS_CERT=pki.server_cert,
        FORYOU_TLS_KEY=pki.server_key,
        FORYOU_TLS_CA=pki.ca,
        FORYOU_TLS_CLIENT_AUTH="true",
    )
    proc, address = _serve_phoenix(tmp_path, env)
    good = pki.client(cert=pki.client_cert, key=pki.client_key)
    end = time.monotonic() + 90
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
        try:
            wait_serving(address, RANKING, 1.0, good)
            break
        except TimeoutError:
            assert time.monotonic() < end, "phoenix never reported SERVING over mTLS"
    yield proc, address
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_phoenix_process_requires_client_certificates(
    mtls_phoenix: tuple[subprocess.Popen[str], str], pki: Any
) -> None:
    """(c) mTLS: no client certificate, or one from another CA, is refused; home_mixer's ranking
    client with the right one gets predictions. Plaintext is refused too."""
    proc, address = mtls_phoenix
    good = pki.client(cert=pki.client_cert, key=pki.client_key)
    assert _health_code(address, good, RANKING) == grpc.StatusCode.OK
    assert _health_code(address, pki.client(), RANKING) in REFUSED
    rogue = pki.client(cert=pki.rogue_client_cert, key=pki.rogue_client_key)
    assert _health_code(address, rogue, RANKING) in REFUSED
    assert _plaintext_code(address, RANKING) in REFUSED

    request = phoenix_pb2.PredictRequest(
        user_id=7,
        action_sequence=phoenix_pb2.ActionSequence(
            items=[phoenix_pb2.HistoryItem(post_id=11, author_id=3, action_mask=2)]
        ),
        candidates=[phoenix_pb2.RankCandidate(post_id=p, author_id=4) for p in (21, 22, 23)],
    )

    async def predict() -> int:
        client = GrpcRankingClient(address, timeout_s=10.0, settings=good)
        try:
            return len((await client.predict(request)).probs)
        finally:
            await client.close()

    assert asyncio.run(predict()) == 3
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_phoenix_process_with_a_missing_certificate_names_the_setting(tmp_path: Path, pki: Any) -> None:
    """(e) the service does not start (nor fall back to plaintext); its error names the setting."""
    missing = str(tmp_path / "missing.pem")
    env = _phoenix_env(tmp_path, FORYOU_TLS_CERT=missing, FORYOU_TLS_KEY=pki.server_key)
    proc, _ = _serve_phoenix(tmp_path, env)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode != 0
    assert f"FORYOU_TLS_CERT={missing}: cannot read" in err
