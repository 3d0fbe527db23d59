"""One ingest service in its own OS process for test_kafka_scale.py: settings from FORYOU_* env
vars, consumer groups `pair-…`. Prints one JSON line per poll ({"assignment", "caught_up",
"applied"}) until stdin closes, then stops cleanly and prints "stopped"."""

from __future__ import annotations

import json
import sys
import threading
import time

from foryou.core.settings import Settings
from foryou.ingest.redis_ingester import IngestConfig
from foryou.ingest.runner import IngestService


def main() -> None:
    svc = IngestService(Settings.from_env(), IngestConfig(group_prefix="pair")).start()
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    try:
        while not done.is_set():
            state = {
                "assignment": {k: [p for _, p in v] for k, v in svc.assignment().items()},
                "caught_up": svc.caught_up(),
                "applied": {k: st.applied for k, st in svc.stats().items()},
            }
            print(json.dumps(state), flush=True)
            time.sleep(0.2)
    finally:
        svc.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
