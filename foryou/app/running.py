"""The address file of a running `foryou up`: `<data_dir>/addresses.json`, written once every
service listens and removed when `up` stops. `foryou feed`, `foryou ui`, `foryou call` and
`foryou.app.client` read it to find the stack when no address is given.

    {"pid": 4242, "started_at": "2026-10-01T12:00:00+00:00",
     "home_mixer": "127.0.0.1:50050", "thunder": "127.0.0.1:50051", "retrieval": "127.0.0.1:50052",
     "ranker": "127.0.0.1:50053", "metrics": "http://127.0.0.1:50055/metrics",
     "ui": "http://127.0.0.1:8080/", "kafka_bootstrap": "127.0.0.1:…", "redis_url": "redis://…"}

A file whose pid is no longer alive (a killed `up`) is ignored."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foryou.app.infra import pid_alive

ADDRESS_FILE = "addresses.json"


@dataclass(frozen=True)
class ServiceAddress:
    """The gRPC address of a service, defined once: read both by the command serving it and by every
    client calling it (foryou.app.cli.addresses, foryou.app.client), so they agree on a host."""

    default: str  # host:port when neither the flag nor the env var is given
    envvar: str  # FORYOU_<SERVICE>_ADDRESS, shared by server and clients (not per command)


HOME_MIXER = ServiceAddress("127.0.0.1:50050", "FORYOU_HOME_MIXER_ADDRESS")
THUNDER = ServiceAddress("127.0.0.1:50051", "FORYOU_THUNDER_ADDRESS")
RETRIEVAL = ServiceAddress("127.0.0.1:50052", "FORYOU_RETRIEVAL_ADDRESS")
RANKER = ServiceAddress("127.0.0.1:50053", "FORYOU_RANKER_ADDRESS")
INGEST = ServiceAddress("127.0.0.1:50054", "FORYOU_INGEST_ADDRESS")  # gRPC health only
# the services a client calls, by the names the address file uses
SERVICES = {"home_mixer": HOME_MIXER, "thunder": THUNDER, "retrieval": RETRIEVAL, "ranker": RANKER}


def address_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / ADDRESS_FILE


def write_addresses(data_dir: str | Path, addresses: dict[str, str]) -> Path:
    """Record this process's service addresses (atomically: a reader never sees half a file)."""
    path = address_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"pid": os.getpid(), "started_at": dt.datetime.now(dt.UTC).isoformat(), **addresses}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    return path


def read_addresses(data_dir: str | Path) -> dict[str, Any] | None:
    """The running stack's addresses, or None when none is running from this data directory."""
    try:
        record: dict[str, Any] = json.loads(address_path(data_dir).read_text())
    except (OSError, ValueError):
        return None
    pid = record.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    return record


def remove_addresses(data_dir: str | Path) -> None:
    """Remove the file if this process wrote it."""
    path = address_path(data_dir)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def find_address(service: str, given: str | None, data_dir: str | Path) -> str:
    """Where a client finds `service` (home_mixer, thunder, retrieval, ranker): `given` (a flag),
    else its env var, else the address the running `foryou up` of `data_dir` recorded, else the
    service's default."""
    if given:
        return given
    spec = SERVICES[service]
    if os.environ.get(spec.envvar):
        return os.environ[spec.envvar]
    running = read_addresses(data_dir) or {}
    return str(running.get(service) or spec.default)
