"""Throwaway PKI for the transport-security tests, made with the `openssl` CLI: a CA, a server
certificate for localhost / 127.0.0.1, a client certificate, and a second ("rogue") CA with a
client certificate of its own that our servers must refuse."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from foryou.core.settings import Settings


@dataclass(frozen=True)
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    rogue_ca: str
    rogue_client_cert: str
    rogue_client_key: str

    def server(self, base: Settings | None = None, client_auth: bool = False) -> Settings:
        """`base` as a TLS server (mTLS with `client_auth`) that is also a TLS client with the
        good client certificate (a process like home_mixer is both)."""
        return (base or Settings()).replace(
            tls_cert=self.server_cert,
            tls_key=self.server_key,
            tls_ca=self.ca,
            tls_client_auth=client_auth,
            tls_client_cert=self.client_cert,
            tls_client_key=self.client_key,
        )

    def client(self, ca: str = "", cert: str = "", key: str = "") -> Settings:
        return Settings(tls_ca=ca or self.ca, tls_client_cert=cert, tls_client_key=key)


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
    )  # fmt: skip
    return cert, key


def _issue(d: Path, ca: tuple[Path, Path], name: str, extensions: str) -> tuple[str, str]:
    cert, key, csr, ext = (d / f"{name}{s}" for s in (".pem", ".key", ".csr", ".ext"))
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
    )  # fmt: skip
    ext.write_text(f"basicConstraints=CA:FALSE\n{extensions}\n")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext,
    )  # fmt: skip
    return str(cert), str(key)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, rogue = _ca(d, "test-ca"), _ca(d, "rogue-ca")
    server = _issue(d, ca, "server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    client = _issue(d, ca, "client", "extendedKeyUsage=clientAuth")
    rogue_client = _issue(d, rogue, "rogue-client", "extendedKeyUsage=clientAuth")
    return Pki(str(ca[0]), *server, *client, str(rogue[0]), *rogue_client)
