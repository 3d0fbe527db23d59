"""Kafka at scale (issue 22): per-topic partitions and replication from the settings, stable
per-replica groups for the full-copy consumers, and ingesters scaled out by partitions: two
ingester services in one consumer group split the partitions and together write the same Redis
state as one service alone (two OS processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from foryou.core.kafka import make_admin
from foryou.core.settings import Settings
from foryou.ingest.redis_ingester import IngestConfig
from foryou.ingest.runner import INGESTERS, IngestService
from foryou.ingest.state_rebuilder import marker_key
from world.config import WorldConfig
from world.generator import generate_world
from world.publish import publish_world

pytestmark = [pytest.mark.integration]


def test_per_topic_partitions_and_replication() -> None:
    s = Settings(
        topic_prefix="x.",
        partitions=3,
        topic_partitions="engagements=8, posts.dlq=2",
        replication_factor=2,
        topic_replication="served=1",
        replica_id="r7",
    )
    topics = s.topics()
    assert topics["x.engagements"] == 8 and topics["x.posts"] == 3
    assert topics["x.posts.dlq"] == 2 and topics["x.engagements.dlq"] == 1
    assert s.replication("x.posts") == 2 and s.replication("x.served") == 1
    assert s.replica_group("thunder") == "x.thunder-r7"  # the same on every start of replica r7
    env = {"FORYOU_TOPIC_PARTITIONS": "posts=12", "FORYOU_REPLICATION_FACTOR": "3"}
    from_env = Settings.from_env(env)
    assert from_env.topics()["posts"] == 12 and from_env.replication("posts") == 3
    with pytest.raises(ValueError, match="FORYOU_TOPIC_PARTITIONS"):
        Settings(topic_partitions="posts=many").topics()


def test_topics_created_with_configured_partitions(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> None:
    s = make_settings(kafka_bootstrap, topic_partitions="engagements=3")
    md = make_admin(s).list_topics(timeout=10).topics
    assert len(md[s.topic("engagements")].partitions) == 3
    assert len(md[s.topic("posts")].partitions) == s.partitions == 2


def _state(r: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under `prefix` (without it) -> its value, by type."""
    out: dict[str, Any] = {}
    for key in r.scan_iter(match=f"{prefix}*", count=1000):
        name = key.decode()[len(prefix) :]
        kind = r.type(key).decode()
        if kind == "string":
            out[name] = r.get(key)
        elif kind == "set":
            out[name] = r.smembers(key)
        elif kind == "hash":
            out[name] = r.hgetall(key)
        elif kind == "zset":
            out[name] = r.zrange(key, 0, -1, withscores=True)
        else:
            raise AssertionError(f"unexpected {kind} at {name}")
    return out


def _wait(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class _IngestProcess:
    """`ingest_main.py` as an OS process; `latest()` is the newest state line it printed."""

    def __init__(self, settings: Settings) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FORYOU_")}
        env |= {
            "FORYOU_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "FORYOU_REDIS_URL": settings.redis_url,
            "FORYOU_TOPIC_PREFIX": settings.topic_prefix,
            "FORYOU_REDIS_PREFIX": settings.redis_prefix,
            "FORYOU_TOPIC_PARTITIONS": settings.topic_partitions,
            "FORYOU_PARTITIONS": str(settings.partitions),
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("ingest_main.py"))],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.state: dict[str, Any] = {}
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())
            if line.startswith("{"):
                self.state = json.loads(line)

    def stop(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the process stops its service cleanly and exits
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def test_two_ingester_processes_share_a_group_and_split_partitions(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], unique_prefix: str
) -> None:
    settings = make_settings(kafka_bootstrap, topic_partitions="engagements=4,user-events=4,posts=4")
    scaled = settings.replace(redis_prefix=unique_prefix)
    pair = [_IngestProcess(scaled) for _ in range(2)]
    try:

        def split() -> bool:
            a, b = (p.state.get("assignment") for p in pair)
            if not a or not b or a.keys() != b.keys():
                return False
            return all(len(a[n]) == len(b[n]) == 2 and not set(a[n]) & set(b[n]) for n in a)

        # both processes joined every group and hold half of each topic's partitions
        _wait(split, 90, f"the partitions to split: {[p.state for p in pair]}")
        names = sorted(pair[0].state["assignment"])
        world = generate_world(WorldConfig.tiny(seed=1, now_ms=int(time.time() * 1000)))
        publish_world(world, settings, progress=False)
        published = world.engagements.height

        def done() -> bool:
            applied = sum(p.state.get("applied", {}).get("action-sequence", 0) for p in pair)
            return applied >= published and all(p.state.get("caught_up") for p in pair)

        _wait(done, 120, f"the pair to catch up: {[p.state for p in pair]}")
        assert split()  # no rebalance meanwhile (counters would then count twice)
        for p in pair:  # both processes did part of the work
            assert all(n > 0 for n in p.state["applied"].values()), p.state
    finally:
        codes = [p.stop() for p in pair]
    assert codes == [0, 0] and all(p.lines[-1] == "stopped" for p in pair)
    solo = IngestService(settings, IngestConfig(group_prefix="solo")).start()
    try:
        assert solo.wait_caught_up(timeout_s=90), solo.stats()
        assert all(len(parts) == 4 for parts in solo.assignment().values())
    finally:
        solo.stop()
    r = redis.Redis.from_url(settings.redis_url)
    one, two = _state(r, settings.redis_prefix), _state(r, unique_prefix)
    assert len(one) > 100 and {k.split(":")[0] for k in one} >= {"post", "seq", "following", "author"}
    # the marker key holds when each service first found Redis empty: not part of the state
    marker = marker_key("")
    assert one.pop(marker) and two.pop(marker)
    assert two == one
    assert len(INGESTERS) == len(names)


def test_full_copy_consumers_use_one_stable_group_per_replica(settings: Settings) -> None:
    """Thunder's posts consumer commits under `<prefix>thunder-<replica>`: the same group on every
    start of a replica (no group left behind per restart), another for another replica."""
    from thunder.config import ThunderConfig
    from thunder.service import ThunderService

    groups = []
    for replica in ("a", "a", "b"):
        svc = ThunderService(settings.replace(replica_id=replica), ThunderConfig.default())
        groups.append(svc.consumer.group_id)
        svc.consumer.close()
    assert groups == [f"{settings.topic_prefix}thunder-a"] * 2 + [f"{settings.topic_prefix}thunder-b"]
