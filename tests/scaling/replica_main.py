"""One home_mixer replica for test_replicas.py, in its own process (so the test can kill it):
the in-process fakes of tests/home_mixer/conftest.py behind a real HomeMixerService on
127.0.0.1:<port>; the ranker's model version names the replica. Prints "ready" once serving."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

from foryou.core.settings import Settings
from home_mixer.clients import HomeMixerClients
from home_mixer.service import HomeMixerConfig, HomeMixerService


def load_fakes() -> Any:
    path = Path(__file__).parent.parent / "home_mixer" / "conftest.py"
    spec = importlib.util.spec_from_file_location("home_mixer_fakes", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class NamedRanker:
    def __init__(self, inner: Any, name: str) -> None:
        self.inner, self.name = inner, name

    async def predict(self, request: Any) -> Any:
        out = await self.inner.predict(request)
        out.model_version = self.name
        return out


async def main(port: int, name: str) -> None:
    w = load_fakes().small_world()
    clients = HomeMixerClients(w.thunder, w.retrieval, NamedRanker(w.ranker, name), w.store)
    svc = HomeMixerService(
        Settings(), clients, HomeMixerConfig(grpc_address=f"127.0.0.1:{port}", publish_served=False)
    )
    await svc.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
