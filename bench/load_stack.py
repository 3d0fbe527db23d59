"""The stack `bench/load.py` starts when no `--target` is given: embedded broker + Redis
(foryou.app.infra), a generated world published to Kafka, untrained checkpoints of the demo's model
shapes (serving cost does not depend on the weights' values, and training would dominate the run
time), and every service in ONE separate process, like `foryou up` / `foryou serve all`.

A separate process so that the load generator's CPU and GIL are not the server's, and so that the
server's peak RSS can be read from /proc. Nothing here runs when the file is executed directly
(`make bench` runs every bench/*.py); the child is started as `python -c "... load_stack.child()"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(slots=True)
class StackInfo:
    """What the parent needs from the started stack (written by the child as JSON)."""

    pid: int
    addresses: dict[str, str]
    world_dir: str
    startup_s: float
    timings: dict[str, float] = field(default_factory=dict)
    world: dict[str, Any] = field(default_factory=dict)
    models: str = ""


def _settings(data_dir: Path) -> Any:
    from foryou.core.settings import Settings

    # a short session timeout: the embedded broker joins a consumer group in about half of it
    return Settings(
        data_dir=str(data_dir),
        partitions=2,
        kafka_session_timeout_ms=2000,
        log_level="WARNING",
        log_json=False,
    )


def _save_models(out: Path, models: str) -> tuple[str, str]:
    """Untrained ranker + two-tower checkpoints in the demo's shapes (`demo`) or the tests' (`tiny`)."""
    import torch

    from phoenix.ranker.checkpoint import save_model
    from phoenix.ranker.config import RankerConfig
    from phoenix.ranker.model import RankerModel
    from phoenix.retrieval.model import TwoTowerConfig, TwoTowerModel, save_two_tower
    from phoenix.retrieval.train import RetrievalTrainConfig

    torch.manual_seed(0)
    if models == "tiny":
        ranker_cfg, tower_cfg = RankerConfig.tiny(), TwoTowerConfig.tiny()
    else:  # the demo serves RankerConfig.small() and RetrievalTrainConfig.fast()'s tower
        ranker_cfg, tower_cfg = RankerConfig.small(), RetrievalTrainConfig.fast().model
    ranker_dir, retrieval_dir = out / "ranker", out / "retrieval"
    save_model(ranker_dir, RankerModel(ranker_cfg), step=0)
    save_two_tower(retrieval_dir, TwoTowerModel(tower_cfg), step=0)
    return str(ranker_dir), str(retrieval_dir)


async def _serve(data_dir: Path, world_preset: str, models: str, ready: Path) -> None:
    from foryou.app import infra
    from foryou.app.stack import Stack, StackConfig
    from foryou.core.logs import setup_logging
    from world import WorldConfig, generate_world
    from world.publish import publish_world

    t0 = time.monotonic()
    timings: dict[str, float] = {}
    settings = _settings(data_dir)
    setup_logging(settings.log_level, settings.log_json)
    state = infra.up(settings)
    settings = settings.replace(kafka_bootstrap=state.kafka_bootstrap, redis_url=state.redis_url)
    timings["infra_s"] = time.monotonic() - t0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = None
    try:
        t = time.monotonic()
        world = generate_world(getattr(WorldConfig, world_preset)(seed=0, now_ms=int(time.time() * 1000)))
        world_dir = world.save(data_dir / "world")
        ranker_dir, retrieval_dir = _save_models(data_dir / "models", models)
        timings["world_and_models_s"] = time.monotonic() - t
        stack = Stack(
            settings,
            StackConfig(
                ranker_dir=ranker_dir,
                retrieval_dir=retrieval_dir,
                sids_path=str(Path(world_dir) / "posts.parquet"),
            ),
        )
        t = time.monotonic()
        await stack.start_ingestion()
        await asyncio.to_thread(publish_world, world, settings, None, False)
        await stack.wait_caught_up()
        timings["ingest_s"] = time.monotonic() - t
        t = time.monotonic()
        await stack.start_serving()
        timings["serving_s"] = time.monotonic() - t
        info = StackInfo(
            pid=os.getpid(),
            addresses=dict(stack.addresses),
            world_dir=str(world_dir),
            startup_s=time.monotonic() - t0,
            timings=timings,
            world={"preset": world_preset, "posts": world.posts.height, "users": world.users.height},
            models=models,
        )
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info)))
        tmp.replace(ready)  # atomic: the parent never reads half a file
        await stop.wait()
    finally:
        if stack is not None:
            await stack.stop()
        infra.down(settings)


def child(data_dir: str, world_preset: str, models: str, ready: str) -> None:
    """Entry point of the stack process."""
    try:
        asyncio.run(_serve(Path(data_dir), world_preset, models, Path(ready)))
    except Exception:
        Path(ready).with_suffix(".error").write_text(traceback.format_exc())
        raise


class LocalStack:
    """Context manager in the load generator's process: starts the child, waits for it to serve,
    stops it (SIGTERM, then SIGKILL) and whatever infrastructure it left behind."""

    def __init__(self, world_preset: str = "tiny", models: str = "demo", timeout_s: float = 180.0) -> None:
        self.world_preset, self.models, self.timeout_s = world_preset, models, timeout_s
        self.dir = Path(tempfile.mkdtemp(prefix="foryou-load-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: StackInfo | None = None

    def __enter__(self) -> StackInfo:
        ready = self.dir / "ready.json"
        code = (
            f"import sys; sys.path.insert(0, {str(BENCH_DIR)!r}); import load_stack; "
            f"load_stack.child({str(self.dir / 'data')!r}, {self.world_preset!r}, {self.models!r}, "
            f"{str(ready)!r})"
        )
        log = open(self.dir / "stack.log", "wb")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout_s
        try:
            while not ready.exists():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "the load stack did not start:\n" + self._tail(ready.with_suffix(".error"))
                    )
                time.sleep(0.1)
            self.info = StackInfo(**json.loads(ready.read_text()))
        except BaseException:
            self.__exit__()
            raise
        return self.info

    def _tail(self, error: Path) -> str:
        out = ""
        with contextlib.suppress(OSError):
            out = (self.dir / "stack.log").read_text(errors="replace")[-2000:]
        if error.exists():
            out += "\n" + error.read_text()[-2000:]
        return out

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # the child stops its broker and Redis; if it was killed, stop exactly what it recorded
        with contextlib.suppress(Exception):
            from foryou.app import infra

            infra.down(_settings(self.dir / "data"))
        shutil.rmtree(self.dir, ignore_errors=True)
