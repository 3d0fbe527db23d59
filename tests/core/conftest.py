"""A Tansu broker of the test's own, on a fixed port, that the test can stop and start again (the
session broker of tests/conftest.py is shared and must stay up). Tansu keeps nothing across a
restart (memory storage), exactly like the embedded broker of `foryou infra up`."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from foryou.app import infra
from foryou.core.kafka import wait_for_broker
from foryou.core.settings import Settings


@dataclass
class RestartableBroker:
    log_dir: Path
    bootstrap: str = ""
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not self.args:  # first start: a free port, then always that port
            self.proc, self.bootstrap = infra.start_broker(self.log_dir)
            self.args = [str(a) for a in self.proc.args]  # type: ignore[union-attr]
            return
        log = open(self.log_dir / "broker.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_broker(self.bootstrap, timeout_s=15)

    def stop(self) -> None:
        """Kill it (SIGKILL: a crash, and no 5 s graceful shutdown); everything it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[RestartableBroker]:
    broker = RestartableBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def restart_settings(
    restartable_broker: RestartableBroker, make_settings: Callable[..., Settings]
) -> Settings:
    """Settings on the restartable broker: topics created, health checked every 0.3 s."""
    return make_settings(restartable_broker.bootstrap, consumer_health_interval_s=0.3)


def _wait_until(cond: Callable[[], bool], timeout_s: float = 30.0, poll_s: float = 0.05) -> float:
    """Seconds until `cond()` held; AssertionError on timeout."""
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout_s, f"condition not met within {timeout_s}s"
        time.sleep(poll_s)
    return time.monotonic() - t0


@pytest.fixture
def wait_until() -> Callable[..., float]:
    """`wait_until(cond, timeout_s=30)`: seconds until cond() held (tests cannot import conftest)."""
    return _wait_until
