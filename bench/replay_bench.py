"""Replay and join throughput on the real embedded broker: publishes N engagement events (and N/2
served impressions they follow) to a fresh Tansu broker, replays both topics into Parquet parts,
then joins them into the training log. Prints replay rate (messages/s, MB/s of message values),
join rate (input rows/s), CPU seconds (comparable on a busy machine) and the peak memory of each
phase, each run in a fresh process so its peak (VmHWM, else ru_maxrss) is its own.

    .venv/bin/python bench/replay_bench.py [--messages 200000] [--part-rows 250000]
        [--rows-per-bucket 1000000] [--partitions 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from foryou.app import infra
from foryou.app.dataset import DEFAULT_ATTRIBUTION_WINDOW_MS, DEFAULT_ROWS_PER_BUCKET
from foryou.app.replay import DEFAULT_PART_ROWS
from foryou.core.kafka import ensure_topics, make_producer
from foryou.core.settings import Settings
from protos import events_pb2 as ev

T0 = 1_700_000_000_000  # served times start here (ms)
HOUR_MS = 3_600_000
FAV, DWELL = ev.ActionName.SERVER_TWEET_FAV, ev.ActionName.CLIENT_TWEET_RECAP_DWELLED


def _rss_mb() -> float:
    """Peak resident memory of this process so far (MB). Linux's VmHWM is this address space's own;
    ru_maxrss would also carry the parent's peak across fork + exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def publish(settings: Settings, n_engagements: int, seed: int = 0) -> tuple[int, int, float]:
    """N/2 impressions over one hour; N engagements on random impressions 0.2-60 s after them
    (a tenth of them on posts never served, which the join leaves out)."""
    rng = np.random.default_rng(seed)
    m = max(1, n_engagements // 2)
    viewer = rng.integers(1, 50_000, m)
    post = rng.integers(1, 2_000_000, m)
    served_at = T0 + np.sort(rng.integers(0, HOUR_MS, m))
    pick = rng.integers(0, m, n_engagements)
    eng_ts = served_at[pick] + rng.integers(200, 60_000, n_engagements)
    eng_post = np.where(rng.random(n_engagements) < 0.1, post[pick] + 7, post[pick])
    action = np.where(rng.random(n_engagements) < 0.5, FAV, DWELL)
    producer = make_producer(settings)
    t0 = time.perf_counter()
    served_topic, eng_topic = settings.topic("served"), settings.topic("engagements")
    probs = rng.random((m, 64), dtype=np.float32)  # every record as home_mixer writes it: 64 heads
    for i, (v, p, t) in enumerate(zip(viewer.tolist(), post.tolist(), served_at.tolist(), strict=True)):
        e = ev.ServedEvent(
            viewer_id=v,
            post_id=p,
            author_id=p % 1000,
            position=i % 35,
            score=0.5,
            request_id=f"req-{v}-{t}",
            served_at_ms=t,
            model_version="bench",
            in_network=bool(i % 2),
            source="PhoenixSource",
            retrieval_model_version="bench-retrieval",
            action_probs=probs[i].tolist(),
            predicted_dwell_s=12.5,
            weighted_score=0.4,
            experiment_bucket="control",
            product_surface=ev.PRODUCT_SURFACE_HOME_TIMELINE,
        )
        producer.produce(served_topic, key=str(v).encode(), value=e.SerializeToString(), timestamp=t)
        producer.poll(0)
    order = np.argsort(eng_ts, kind="stable")  # clients publish in time order
    cols = (viewer[pick][order], eng_post[order], action[order], eng_ts[order])
    for u, p, a, t in zip(*(c.tolist() for c in cols), strict=True):
        g = ev.EngagementEvent(
            user_id=u,
            post_id=p,
            author_id=p % 1000,
            action=a,
            timestamp_ms=t,
            product_surface=1,
            dwell_ms=1500,
        )
        producer.produce(eng_topic, key=str(u).encode(), value=g.SerializeToString(), timestamp=t)
        producer.poll(0)
    producer.flush(60)
    return m, n_engagements, time.perf_counter() - t0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _replay_child(
    settings: Settings, topic: str, since: int, until: int, out: str, part_rows: int
) -> dict[str, Any]:
    from foryou.app.replay import replay_topic

    base, cpu0 = _rss_mb(), _cpu_s()
    t0 = time.perf_counter()
    res = replay_topic(settings, topic, since, until, out, part_rows=part_rows)
    dt = time.perf_counter() - t0
    return {
        "messages": res.messages + res.outside,
        "rows": res.rows,
        "bytes": res.bytes,
        "files": len(res.files),
        "seconds": dt,
        "cpu_s": _cpu_s() - cpu0,
        "base_mb": base,
        "peak_mb": _rss_mb(),
    }


def _join_child(served: str, eng: str, out: str, rows_per_bucket: int) -> dict[str, Any]:
    from foryou.app.dataset import build_dataset

    base, cpu0 = _rss_mb(), _cpu_s()
    s = build_dataset(served, eng, out, rows_per_bucket=rows_per_bucket)
    return {
        "rows_in": s.served + s.engagements,
        "rows_out": s.rows,
        "positives": s.positives,
        "unattributed": s.unattributed,
        "duplicates": s.duplicate_actions,
        "censored": s.censored_impressions,
        "buckets": s.buckets,
        "seconds": s.seconds,
        "cpu_s": _cpu_s() - cpu0,
        "base_mb": base,
        "peak_mb": _rss_mb(),
    }


def _in_child(fn: Any, *args: Any) -> dict[str, Any]:
    """A fresh (spawned) process per phase: its peak RSS is that phase's alone."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000, help="engagement events to publish")
    ap.add_argument("--part-rows", type=int, default=DEFAULT_PART_ROWS)
    ap.add_argument("--rows-per-bucket", type=int, default=DEFAULT_ROWS_PER_BUCKET)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        proc, bootstrap = infra.start_broker(tmp)
        try:
            settings = Settings(
                kafka_bootstrap=bootstrap,
                redis_url="redis://unused",
                partitions=args.partitions,
                log_json=False,
            )
            ensure_topics(settings, settings.topics())
            n_served, n_eng, dt = publish(settings, args.messages)
            print(f"published {n_served:,} served + {n_eng:,} engagements in {dt:.1f} s")
            # served: the hour; engagements: one attribution window longer, so nothing is censored
            windows = {
                "served": T0 + HOUR_MS,
                "engagements": T0 + HOUR_MS + DEFAULT_ATTRIBUTION_WINDOW_MS,
            }
            for topic, until in windows.items():
                r = _in_child(_replay_child, settings, topic, T0, until, str(tmp / topic), args.part_rows)
                rate, mbs = r["messages"] / r["seconds"], r["bytes"] / r["seconds"] / 1e6
                print(
                    f"replay {topic:<12} {r['messages']:>10,} msgs in {r['seconds']:6.2f} s "
                    f"({r['cpu_s']:.2f} s CPU): "
                    f"{rate:>9,.0f} msg/s, {mbs:6.1f} MB/s, {r['files']} parts, "
                    f"peak RSS {r['peak_mb']:.0f} MB (after imports {r['base_mb']:.0f} MB)"
                )
            j = _in_child(
                _join_child,
                str(tmp / "served"),
                str(tmp / "engagements"),
                str(tmp / "log.parquet"),
                args.rows_per_bucket,
            )
            print(
                f"join {j['rows_in']:,} rows in -> {j['rows_out']:,} rows out ({j['positives']:,} positives, "
                f"{j['unattributed']:,} unattributed, {j['duplicates']:,} duplicate actions, "
                f"{j['censored']:,} censored impressions) "
                f"in {j['seconds']:.2f} s ({j['cpu_s']:.2f} s CPU): "
                f"{j['rows_in'] / j['seconds']:,.0f} rows/s, {j['buckets']} bucket(s), "
                f"peak RSS {j['peak_mb']:.0f} MB (after imports {j['base_mb']:.0f} MB)"
            )
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
