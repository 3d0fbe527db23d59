"""Load and saturation for every gRPC service: home_mixer GetScoredPosts, Thunder GetInNetworkPosts,
Phoenix Retrieve and Predict.

- open loop (`--rate R`): arrivals on a schedule (Poisson or fixed interval) that never waits for
  responses; each latency is measured from the request's *scheduled* send time, so a server (or a
  generator) that falls behind shows up in the latencies instead of being coordinated away;
- closed loop (`--concurrency N`): N clients, each on its own connection, sending back to back;
- `--find-saturation`: per service, open-loop steps doubling the rate, then bisecting, to the
  highest rate the service sustains (achieved ≈ offered, ≤ 1% errors or degraded answers, p99 within
  the SLO), then one run at 2x that rate: shed share (RESOURCE_EXHAUSTED) and accepted latency.

Every run is bounded by `--requests` and `--duration`. Without `--target` a small stack is started
in a separate process (bench/load_stack.py: embedded broker + Redis, tiny world, untrained demo-size
models); requests are built from the world (bench/load_payloads.py). Prints a table (plain text when
not a TTY); `--json PATH` writes every figure.

    .venv/bin/python bench/load.py                       # closed loop (4 clients), then open loop
    .venv/bin/python bench/load.py --find-saturation --json /tmp/sat.json
    .venv/bin/python bench/load.py --target home_mixer=127.0.0.1:50054 --world .foryou/world --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the load_*.py helpers, also when imported

from protos import home_mixer_pb2, phoenix_pb2, thunder_pb2  # noqa: E402

Factory = Callable[[int], bytes]
Decode = Callable[[bytes], list[str]]  # response bytes -> dependencies it was degraded by

MAX_REQUESTS = 1_000_000  # hard bounds: a typo must not become an unbounded run
MAX_DURATION_S = 600.0
MAX_STEP_S = 4.0  # longest saturation step stretched for --min-step-requests


def _method_path(module: Any, service: str, method: str) -> str:
    """`/package.Service/Method` from the generated descriptors (no hand-written strings)."""
    svc = module.DESCRIPTOR.services_by_name[service]
    return f"/{svc.full_name}/{svc.methods_by_name[method].name}"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    key: str  # --target / --services name (= foryou.app.stack's address keys)
    label: str
    path: str
    payload: str  # attribute of load_payloads.Payloads
    slo_ms: float  # default p99 bound of --find-saturation


def _decode_home_mixer(raw: bytes) -> list[str]:
    resp = home_mixer_pb2.GetScoredPostsResponse.FromString(raw)
    return list(resp.degraded) or ([] if resp.scored_posts else ["empty"])


# SLOs: home_mixer's end-to-end budget (p99 300 ms, docs/PERFORMANCE.md); its dependencies a share of
# it (its sources time out after 300 ms, the ranker call after 500 ms; gRPC + Python on 2 cores)
SERVICES: dict[str, ServiceSpec] = {
    s.key: s
    for s in (
        ServiceSpec(
            "home_mixer",
            "home_mixer GetScoredPosts",
            _method_path(home_mixer_pb2, "ScoredPostsService", "GetScoredPosts"),
            "home_mixer",
            300.0,
        ),
        ServiceSpec(
            "thunder",
            "thunder GetInNetworkPosts",
            _method_path(thunder_pb2, "InNetworkPostsService", "GetInNetworkPosts"),
            "thunder",
            50.0,
        ),
        ServiceSpec(
            "retrieval",
            "phoenix Retrieve",
            _method_path(phoenix_pb2, "RetrievalService", "Retrieve"),
            "retrieve",
            50.0,
        ),
        ServiceSpec(
            "ranker",
            "phoenix Predict",
            _method_path(phoenix_pb2, "RankingService", "Predict"),
            "predict",
            100.0,
        ),
    )
}
DECODERS: dict[str, Decode] = {"home_mixer": _decode_home_mixer}


# --- statistics ---


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile (0-100), linear interpolation between closest ranks; NaN for no values."""
    return float(np.percentile(values, q)) if len(values) else math.nan


@dataclass(slots=True)
class Sample:
    status: str  # grpc.StatusCode name, or CLIENT_<Exception> for a failure in the client itself
    latency_ms: float  # open loop: from the scheduled send time; closed loop: from the send
    done_s: float  # completion, seconds after the run started
    degraded: list[str] = field(default_factory=list)
    details: str = ""  # the error's message (which limit answered, e.g.)


@dataclass(slots=True)
class RunResult:
    service: str
    mode: str  # "open" | "closed"
    sent: int
    elapsed_s: float  # start to last completion
    window_s: float  # open: the planned arrival window; closed: elapsed_s
    offered_rps: float  # open: sent / window; closed: 0 (the clients set the pace)
    achieved_rps: float  # good answers (OK, not degraded) per second, see summarise()
    counts: dict[str, int]  # per gRPC status
    p50_ms: float  # latencies of OK answers
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    rate: float = 0.0  # open loop: the target rate
    concurrency: int = 0  # closed loop
    arrivals: str = ""
    degraded: dict[str, int] = field(default_factory=dict)  # OK answers that failed open, by dependency
    status_p50_ms: dict[str, float] = field(default_factory=dict)  # how fast each status comes back
    status_details: dict[str, str] = field(default_factory=dict)  # first error message per status
    send_lag_p99_ms: float = 0.0  # open loop: how late the generator sent (its own saturation)
    client_cpu: float = 0.0  # generator process CPU, cores (1.0 = one core busy)
    server_cpu: float | None = None  # local server process CPU, cores
    peak_rss_mb: float | None = None  # local server process, sampled during the run

    @property
    def ok(self) -> int:
        return self.counts.get("OK", 0)

    @property
    def degraded_requests(self) -> int:
        return self.degraded.get("_requests", 0)

    def share(self, status: str) -> float:
        return self.counts.get(status, 0) / self.sent if self.sent else 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok_share"] = self.share("OK")
        d["shed_share"] = self.share("RESOURCE_EXHAUSTED")
        return d


def summarise(
    samples: Sequence[Sample],
    *,
    service: str,
    mode: str,
    sent: int,
    elapsed_s: float,
    window_s: float,
    **extra: Any,
) -> RunResult:
    """Counts per status and percentiles of the OK latencies. Achieved rate = good answers over
    max(window, span - p50): in an open-loop run the last answers arrive one latency after the
    window, and that drain is not the server falling behind; closed loop: over the elapsed time."""
    counts = Counter(s.status for s in samples)
    ok_lat = [s.latency_ms for s in samples if s.status == "OK"]
    by_status: dict[str, list[float]] = {}
    details: dict[str, str] = {}
    for s in samples:
        by_status.setdefault(s.status, []).append(s.latency_ms)
        if s.details:
            details.setdefault(s.status, s.details[:200])
    degraded: Counter[str] = Counter()
    for s in samples:
        if s.status == "OK" and s.degraded:
            degraded["_requests"] += 1
            degraded.update(s.degraded)
    good = len(ok_lat) - degraded["_requests"]
    p50 = percentile(ok_lat, 50)
    if mode == "open":
        span = max((s.done_s for s in samples if s.status == "OK"), default=window_s)
        denom = max(window_s, span - (p50 / 1000 if ok_lat else 0.0))
        offered = sent / window_s if window_s > 0 else 0.0
    else:
        denom, offered = elapsed_s, 0.0
    return RunResult(
        service=service,
        mode=mode,
        sent=sent,
        elapsed_s=elapsed_s,
        window_s=window_s,
        offered_rps=offered,
        achieved_rps=good / denom if denom > 0 else 0.0,
        counts=dict(sorted(counts.items())),
        p50_ms=p50,
        p95_ms=percentile(ok_lat, 95),
        p99_ms=percentile(ok_lat, 99),
        max_ms=max(ok_lat, default=math.nan),
        mean_ms=float(np.mean(ok_lat)) if ok_lat else math.nan,
        degraded=dict(degraded),
        status_p50_ms={k: percentile(v, 50) for k, v in sorted(by_status.items())},
        status_details=dict(sorted(details.items())),
        **extra,
    )


def arrival_offsets(
    rate: float, requests: int, duration_s: float, arrivals: str = "poisson", seed: int = 0
) -> tuple[list[float], float]:
    """Send times (seconds from the start) and the planned window: min(requests, rate x window)
    arrivals. `fixed`: one every 1/rate s. `poisson`: a Poisson process conditioned on its count,
    i.e. that many uniform times in the window, sorted: the bursts of independent users, without
    the count's own noise (±20% at 50 requests) blurring the offered rate of a short step."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    window = min(duration_s, requests / rate)
    n = max(1, min(requests, math.floor(rate * window + 1e-9)))
    if arrivals == "fixed":
        return [i / rate for i in range(n)], window
    if arrivals != "poisson":
        raise ValueError(f"arrivals must be poisson or fixed, not {arrivals!r}")
    rng = np.random.default_rng(seed)
    return sorted(rng.uniform(0.0, window, n).tolist()), window


# --- the server process: RSS and CPU from /proc (Linux; None elsewhere) ---


def _proc_status_kb(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _proc_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def local_pid_for_port(port: int) -> int | None:
    """The pid of this user's process listening on `port` (via /proc/net/tcp and fds), or None."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                    inodes.add(parts[9])
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(proc.name)
    return None


class ServerProbe:
    """Peak RSS (sampled every 50 ms) and CPU of the server process over one run."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._task: asyncio.Task[None] | None = None
        self._cpu0 = 0.0
        self._server_cpu0: float | None = None
        self._t0 = 0.0

    async def _sample(self) -> None:
        assert self.pid is not None
        while True:
            self.peak_kb = max(self.peak_kb, _proc_status_kb(self.pid, "VmRSS") or 0)
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._t0, self._cpu0 = time.perf_counter(), time.process_time()
        self._server_cpu0 = _proc_cpu_s(self.pid) if self.pid else None
        if self.pid:
            self._task = asyncio.create_task(self._sample())

    async def stop(self) -> dict[str, Any]:
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        out: dict[str, Any] = {"client_cpu": (time.process_time() - self._cpu0) / elapsed}
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            assert self.pid is not None
            self.peak_kb = max(self.peak_kb, _proc_status_kb(self.pid, "VmRSS") or 0)
            out["peak_rss_mb"] = self.peak_kb / 1024 if self.peak_kb else None
            cpu1 = _proc_cpu_s(self.pid)
            if cpu1 is not None and self._server_cpu0 is not None:
                out["server_cpu"] = (cpu1 - self._server_cpu0) / elapsed
        return out


# --- the load loops ---


async def _call(
    rpc: grpc.aio.UnaryUnaryMultiCallable,
    payload: bytes,
    deadline_s: float,
    decode: Decode | None,
    start: float,
    t0: float,
) -> Sample:
    """One request; its latency counts from `start` (perf_counter), its completion from `t0`."""
    status, details = "OK", ""
    degraded: list[str] = []
    try:
        raw = await rpc(payload, timeout=deadline_s)
    except grpc.aio.AioRpcError as e:
        status, details = e.code().name, e.details() or ""
    except Exception as e:  # counted, not raised: one broken call must not end the run
        status, details = f"CLIENT_{type(e).__name__}", str(e)
    else:
        degraded = decode(raw) if decode else []
    now = time.perf_counter()
    return Sample(status, (now - start) * 1000, now - t0, degraded, details)


def _raw(channel: grpc.aio.Channel, path: str) -> grpc.aio.UnaryUnaryMultiCallable:
    # bytes in, bytes out: payloads are serialised once up front and responses are not parsed
    # (except home_mixer's small ones, for `degraded`), so the generator spends little CPU on the
    # 2 cores it shares with the server
    return channel.unary_unary(path, request_serializer=None, response_deserializer=None)


def _check_bounds(requests: int, duration_s: float) -> None:
    if not 1 <= requests <= MAX_REQUESTS:
        raise ValueError(f"requests must be in 1..{MAX_REQUESTS}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration must be in (0, {MAX_DURATION_S}] s")


async def run_open_loop(
    address: str,
    path: str,
    factory: Factory,
    rate: float,
    *,
    requests: int,
    duration_s: float,
    deadline_s: float = 1.0,
    arrivals: str = "poisson",
    seed: int = 0,
    decode: Decode | None = None,
    server_pid: int | None = None,
    service: str = "",
    first_index: int = 0,
) -> RunResult:
    """Sends on the arrival schedule without waiting for answers; returns once every request has
    an answer or its deadline has passed."""
    _check_bounds(requests, duration_s)
    offsets, window = arrival_offsets(rate, requests, duration_s, arrivals, seed)
    payloads = [factory(first_index + i) for i in range(len(offsets))]  # not on the send path
    samples: list[Sample] = []
    lags: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        rpc = _raw(channel, path)
        probe = ServerProbe(server_pid)
        probe.start()
        t0 = time.perf_counter()

        async def one(payload: bytes, scheduled: float) -> None:
            samples.append(await _call(rpc, payload, deadline_s, decode, scheduled, t0))

        tasks = []
        for off, payload in zip(offsets, payloads, strict=True):
            scheduled = t0 + off
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(max(0.0, time.perf_counter() - scheduled) * 1000)
            tasks.append(asyncio.create_task(one(payload, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        proc = await probe.stop()
    return summarise(
        samples,
        service=service,
        mode="open",
        sent=len(offsets),
        elapsed_s=elapsed,
        window_s=window,
        rate=rate,
        arrivals=arrivals,
        send_lag_p99_ms=percentile(lags, 99),
        **proc,
    )


async def run_closed_loop(
    address: str,
    path: str,
    factory: Factory,
    concurrency: int,
    *,
    requests: int,
    duration_s: float,
    deadline_s: float = 1.0,
    decode: Decode | None = None,
    server_pid: int | None = None,
    service: str = "",
    first_index: int = 0,
) -> RunResult:
    """`concurrency` clients, each on its own connection, each sending its next request when the
    previous one is answered, until `requests` have been sent or `duration_s` has passed."""
    _check_bounds(requests, duration_s)
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    # a local subchannel pool per channel: one TCP connection per client (grpc shares one per
    # target in a process otherwise)
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(concurrency)
    ]
    samples: list[Sample] = []
    next_index = 0
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 10)
        probe = ServerProbe(server_pid)
        probe.start()
        t0 = time.perf_counter()
        end = t0 + duration_s

        async def client(channel: grpc.aio.Channel) -> None:
            nonlocal next_index
            rpc = _raw(channel, path)
            while time.perf_counter() < end and next_index < requests:
                payload = factory(first_index + next_index)
                next_index += 1  # single-threaded event loop: no lock needed
                samples.append(await _call(rpc, payload, deadline_s, decode, time.perf_counter(), t0))

        await asyncio.gather(*(client(c) for c in channels))
        elapsed = time.perf_counter() - t0
        proc = await probe.stop()
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    return summarise(
        samples,
        service=service,
        mode="closed",
        sent=next_index,
        elapsed_s=elapsed,
        window_s=elapsed,
        concurrency=concurrency,
        **proc,
    )


# --- saturation ---


@dataclass(slots=True)
class Saturation:
    service: str
    slo_ms: float
    deadline_ms: float
    steps: list[RunResult]
    saturation_rps: float | None  # highest rate that kept up; None: not even the lowest tried
    at_saturation: RunResult | None
    overload: RunResult | None  # the run at 2x saturation_rps
    bound: str  # why the search stopped: "server", "max-rate", "not-reached"
    calibration_rps: float = 0.0  # one client, back to back

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "slo_ms": self.slo_ms,
            "deadline_ms": self.deadline_ms,
            "saturation_rps": self.saturation_rps,
            "bound": self.bound,
            "calibration_rps": self.calibration_rps,
            "at_saturation": self.at_saturation.to_json() if self.at_saturation else None,
            "overload": self.overload.to_json() if self.overload else None,
            "steps": [s.to_json() for s in self.steps],
        }


def keeps_up(r: RunResult, slo_ms: float, tolerance: float = 0.9, max_bad_share: float = 0.01) -> bool:
    """The service sustained the offered rate: achieved >= 90% of offered, at most 1% of requests
    failed or were answered degraded, and the p99 of the OK answers is within the SLO."""
    bad = r.sent - r.ok + r.degraded_requests
    return (
        r.sent > 0
        and r.achieved_rps >= tolerance * r.offered_rps
        and bad <= max_bad_share * r.sent
        and not math.isnan(r.p99_ms)
        and r.p99_ms <= slo_ms
    )


Runner = Callable[[float], Awaitable[RunResult]]


async def find_saturation(
    run_at: Runner,
    calibrate: Callable[[], Awaitable[RunResult]],
    *,
    service: str,
    slo_ms: float,
    deadline_ms: float,
    max_rate: float = 5000.0,
    bisect_steps: int = 3,
    retries: int = 1,
    max_steps: int = 16,
    log: Callable[[str], None] = print,
) -> Saturation:
    """Start at half the one-client rate, double until a step fails, bisect (geometric) between the
    last good and the first bad rate, then run at 2x the saturation rate. A failed step is re-run
    `retries` times and passes if any attempt does: overload fails every time, whereas a stall of
    a machine shared with other jobs (a few 10 ms hiccups in a p99 of 40 samples) does not."""
    slo = min(slo_ms, deadline_ms)
    cal = await calibrate()
    base = cal.achieved_rps or 1.0
    log(f"  {service}: one client back to back {base:.1f} req/s, p50 {cal.p50_ms:.1f} ms")
    steps: list[RunResult] = []

    async def step(rate: float) -> tuple[bool, RunResult]:
        for attempt in range(retries + 1):
            r = await run_at(rate)
            steps.append(r)
            ok = keeps_up(r, slo)
            bad = {k: v for k, v in r.counts.items() if k != "OK"}
            if r.degraded_requests:
                bad["degraded"] = r.degraded_requests
            verdict = "keeps up" if ok else ("saturated" if attempt == retries else "failed, again")
            log(
                f"  {service}: rate {rate:7.1f}/s (sent {r.offered_rps:7.1f}/s, n {r.sent:4d}) -> achieved "
                f"{r.achieved_rps:7.1f}/s, p99 {r.p99_ms:6.1f} ms, {bad or 'all OK'}, send lag p99 "
                f"{r.send_lag_p99_ms:.0f} ms -> {verdict}"
            )
            if ok or len(steps) >= max_steps:
                break
        return ok, r

    good: RunResult | None = None
    bad: RunResult | None = None
    rate = max(1.0, round(base / 2, 1))
    tries_down = 0
    while len(steps) < max_steps:
        ok, r = await step(rate)
        if ok:
            good = r
            if bad is not None or rate * 2 > max_rate:
                break
            rate *= 2
        else:
            bad = r
            if good is not None:
                break
            tries_down += 1  # even the start rate was too much: go down a few times
            if tries_down > 3 or rate <= 1.0:
                break
            rate = max(1.0, rate / 4)
    if good is not None and bad is not None:
        lo, hi = good.rate, bad.rate
        for _ in range(bisect_steps):
            if hi / lo <= 1.2 or len(steps) >= max_steps:
                break
            mid = round(math.sqrt(lo * hi), 1)
            ok, r = await step(mid)
            if ok:
                lo, good = mid, r
            else:
                hi = mid
    if good is None:
        return Saturation(service, slo_ms, deadline_ms, steps, None, None, None, "not-reached", base)
    bound = "server" if bad is not None else "max-rate"
    log(f"  {service}: saturation {good.rate:.1f} req/s; now 2x = {2 * good.rate:.1f} req/s")
    over = await run_at(2 * good.rate)
    return Saturation(service, slo_ms, deadline_ms, steps, good.rate, good, over, bound, base)


# --- output ---


def _fmt_ms(x: float) -> str:
    return "-" if math.isnan(x) else (f"{x:.1f}" if x < 100 else f"{x:.0f}")


def _statuses(r: RunResult) -> str:
    parts = [f"{k} {v}" for k, v in r.counts.items() if k != "OK"]
    return ", ".join(parts) or "-"


def _degraded(r: RunResult) -> str:
    if not r.degraded_requests:
        return "-"
    deps = ", ".join(f"{k} {v}" for k, v in r.degraded.items() if k != "_requests")
    return f"{r.degraded_requests} ({deps})"


def _cpu(r: RunResult) -> str:
    srv = "-" if r.server_cpu is None else f"{r.server_cpu:.2f}"
    return f"{r.client_cpu:.2f} / {srv}"


def _rss(r: RunResult | None) -> str:
    return "-" if r is None or r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}"


def print_table(title: str, header: list[str], rows: list[list[str]], tty: bool) -> None:
    if tty:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print(f"\n{title}")
    for row in [header, *rows]:
        cells = (
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        print("  ".join(cells))


def print_runs(runs: list[RunResult], tty: bool) -> None:
    header = ["service", "mode", "sent", "OK", "achieved/s", "p50 ms", "p95 ms", "p99 ms"]
    header += ["other statuses", "degraded", "CPU cli/srv", "RSS MB"]
    rows = []
    for r in runs:
        mode = f"open {r.rate:g}/s {r.arrivals}" if r.mode == "open" else f"closed x{r.concurrency}"
        rows.append(
            [
                r.service,
                mode,
                str(r.sent),
                str(r.ok),
                f"{r.achieved_rps:.1f}",
                _fmt_ms(r.p50_ms),
                _fmt_ms(r.p95_ms),
                _fmt_ms(r.p99_ms),
                _statuses(r),
                _degraded(r),
                _cpu(r),
                _rss(r),
            ]
        )
    print_table("load runs (latencies of OK answers)", header, rows, tty)


def print_saturation(results: list[Saturation], tty: bool) -> None:
    header = ["service", "SLO p99", "saturation req/s", "p50/p99 there", "2x req/s", "achieved"]
    header += ["shed (RES_EXH)", "other errors", "degraded", "accepted p50/p99", "RSS MB"]
    rows = []
    for s in results:
        at, over = s.at_saturation, s.overload
        sat = "-" if s.saturation_rps is None else f"{s.saturation_rps:g}"
        if s.bound == "max-rate":
            sat = f">= {sat}"
        row = [s.service, f"{s.slo_ms:g} ms", sat]
        row.append("-" if at is None else f"{_fmt_ms(at.p50_ms)} / {_fmt_ms(at.p99_ms)} ms (n {at.sent})")
        if over is None:
            row += ["-"] * 7
        else:
            other = over.sent - over.ok - over.counts.get("RESOURCE_EXHAUSTED", 0)
            row += [
                f"{over.rate:g}",
                f"{over.achieved_rps:.1f}",
                f"{100 * over.share('RESOURCE_EXHAUSTED'):.1f}%",
                f"{100 * other / over.sent:.1f}%" if over.sent else "-",
                f"{100 * over.degraded_requests / over.sent:.1f}%" if over.sent else "-",
                f"{_fmt_ms(over.p50_ms)} / {_fmt_ms(over.p99_ms)} ms",
                _rss(over),
            ]
        rows.append(row)
    print_table("saturation (open loop) and 2x overload", header, rows, tty)
    for s in results:  # which limit answered the errors at 2x, and how fast
        if s.overload is not None:
            for status, n in s.overload.counts.items():
                if status != "OK":
                    detail = s.overload.status_details.get(status, "")
                    p50 = _fmt_ms(s.overload.status_p50_ms.get(status, math.nan))
                    print(f"  {s.service} at 2x: {status} x{n}, answered in p50 {p50} ms: {detail!r}")


# --- CLI ---


def _parse_targets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, _, addr = item.partition("=")
        if name not in SERVICES or ":" not in addr:
            raise SystemExit(f"--target {item!r}: expected one of {sorted(SERVICES)}=HOST:PORT")
        out[name] = addr
    return out


def _slo_for(spec: ServiceSpec, slo_args: list[str]) -> float:
    """`--slo-ms 200` for every service, `--slo-ms ranker=80` for one; else the spec's default."""
    slo = spec.slo_ms
    for item in slo_args:
        name, sep, value = item.rpartition("=")
        if not sep or name == spec.key:
            slo = float(value)
    return slo


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="SERVICE=HOST:PORT",
        help=f"an already-running service ({', '.join(SERVICES)}); repeatable. Default: start a stack",
    )
    ap.add_argument("--services", default="", help="comma-separated subset (default: all available)")
    ap.add_argument(
        "--world", default="", help="saved world for payloads with --target (default DATA_DIR/world)"
    )
    ap.add_argument(
        "--server-pid", type=int, default=0, help="pid for RSS/CPU with --target (default: found)"
    )
    ap.add_argument(
        "--mode", choices=("both", "open", "closed"), default="", help="default: both, or open with --rate"
    )
    ap.add_argument(
        "--rate", type=float, default=0.0, help="open loop requests/s (default: half the closed loop's)"
    )
    ap.add_argument("--arrivals", choices=("poisson", "fixed"), default="poisson")
    ap.add_argument("--concurrency", type=int, default=4, help="closed loop clients")
    ap.add_argument("--requests", type=int, default=2000, help=f"max requests per run (<= {MAX_REQUESTS})")
    ap.add_argument(
        "--duration", type=float, default=0.0, help="max seconds per run (default 5; 1.5 per saturation step)"
    )
    ap.add_argument("--deadline-ms", type=float, default=1000.0, help="gRPC deadline of each request")
    ap.add_argument(
        "--slo-ms", action="append", default=[], metavar="[SERVICE=]MS", help="p99 bound for saturation"
    )
    ap.add_argument("--find-saturation", action="store_true")
    ap.add_argument("--max-rate", type=float, default=5000.0)
    ap.add_argument("--bisect-steps", type=int, default=3)
    ap.add_argument(
        "--min-step-requests",
        type=int,
        default=40,
        help=f"saturation steps last up to {MAX_STEP_S:g} s for these",
    )
    ap.add_argument("--viewers", type=int, default=64)
    ap.add_argument("--history", type=int, default=128, help="history items per Predict/Retrieve")
    ap.add_argument("--candidates", type=int, default=1000, help="candidates per Predict")
    ap.add_argument("--top-k", type=int, default=1000, help="Retrieve top_k")
    ap.add_argument("--following", type=int, default=0, help="Thunder followees (0: the viewer's real ones)")
    ap.add_argument("--predict-cache", action="store_true", help="let repeated Predicts hit the score cache")
    ap.add_argument("--world-preset", choices=("tiny", "demo"), default="tiny", help="self-started stack")
    ap.add_argument(
        "--models", choices=("demo", "tiny"), default="demo", help="self-started stack's model sizes"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="", help="write every figure here")
    return ap


class ServiceLoad:
    """One service's runs with the CLI's settings; request indices keep growing across runs (and
    services) so that unique payloads (Predict) stay unique."""

    counter = 0

    def __init__(
        self,
        args: argparse.Namespace,
        spec: ServiceSpec,
        address: str,
        factory: Factory,
        pid: int | None,
        duration_s: float,
    ) -> None:
        self.args, self.spec, self.address, self.factory = args, spec, address, factory
        self.duration_s = duration_s
        self.common: dict[str, Any] = dict(
            deadline_s=args.deadline_ms / 1000,
            decode=DECODERS.get(spec.key),
            server_pid=pid,
            service=spec.key,
        )

    def _take(self, r: RunResult) -> RunResult:
        ServiceLoad.counter += r.sent
        return r

    async def closed(self, concurrency: int, requests: int, duration_s: float) -> RunResult:
        r = await run_closed_loop(
            self.address,
            self.spec.path,
            self.factory,
            concurrency,
            requests=requests,
            duration_s=duration_s,
            first_index=ServiceLoad.counter,
            **self.common,
        )
        return self._take(r)

    async def open(self, rate: float, min_requests: int = 0) -> RunResult:
        """`min_requests`: stretch the window (up to 4 s) so that a low rate still gives a p99 of
        more than a handful of samples."""
        duration = self.duration_s
        if min_requests:
            duration = max(duration, min(min_requests / rate, MAX_STEP_S))
        await asyncio.sleep(0.3)  # let the server's queues drain after the previous run
        r = await run_open_loop(
            self.address,
            self.spec.path,
            self.factory,
            rate,
            requests=self.args.requests,
            duration_s=duration,
            arrivals=self.args.arrivals,
            seed=self.args.seed + ServiceLoad.counter,
            first_index=ServiceLoad.counter,
            **self.common,
        )
        return self._take(r)


async def _run_services(
    args: argparse.Namespace, addresses: dict[str, str], world_dir: str, pids: dict[str, int | None]
) -> tuple[list[RunResult], list[Saturation], dict[str, Any]]:
    from load_payloads import Payloads, PayloadSizes

    sizes = PayloadSizes(args.viewers, args.history, args.candidates, args.top_k, args.following, args.seed)
    payloads = Payloads(world_dir, sizes)
    log: Callable[[str], None] = print
    if sys.stdout.isatty():
        from rich.console import Console

        console = Console()
        log = lambda s: console.print(s, highlight=False)  # noqa: E731
    wanted = (
        [s for s in args.services.split(",") if s]
        if args.services
        else [s for s in SERVICES if s in addresses]
    )
    runs: list[RunResult] = []
    sats: list[Saturation] = []
    mode = args.mode or ("open" if args.rate else "both")
    duration = args.duration or (1.5 if args.find_saturation else 5.0)
    for key in wanted:
        if key not in SERVICES:
            raise SystemExit(f"unknown service {key!r}; one of {sorted(SERVICES)}")
        if key not in addresses:
            log(f"{key}: no address, skipped")
            continue
        spec = SERVICES[key]
        load = ServiceLoad(
            args,
            spec,
            addresses[key],
            payloads.factory(spec.payload, not args.predict_cache),
            pids.get(key),
            duration,
        )
        # warm-up: connections, lazily built model state, the server's first-request costs
        await load.closed(2, 20, 2.0)
        log(f"{spec.label} at {addresses[key]}")
        if args.find_saturation:
            sats.append(
                await find_saturation(
                    lambda rate, load=load: load.open(rate, args.min_step_requests),
                    lambda load=load: load.closed(1, 50, 1.0),
                    service=key,
                    slo_ms=_slo_for(spec, args.slo_ms),
                    deadline_ms=args.deadline_ms,
                    max_rate=args.max_rate,
                    bisect_steps=args.bisect_steps,
                    log=log,
                )
            )
            continue
        if mode in ("closed", "both"):
            r = await load.closed(args.concurrency, args.requests, duration)
            runs.append(r)
            log(f"  closed x{r.concurrency}: {r.achieved_rps:.1f} req/s, p99 {_fmt_ms(r.p99_ms)} ms")
        if mode in ("open", "both"):
            # default rate: half of what the closed loop achieved, i.e. well below saturation
            rate = args.rate or max(1.0, round(runs[-1].achieved_rps / 2, 1) if runs else 10.0)
            r = await load.open(rate)
            runs.append(r)
            log(f"  open {rate:g}/s: {r.achieved_rps:.1f} req/s, p99 {_fmt_ms(r.p99_ms)} ms")
    return runs, sats, payloads.describe()


def phoenix_device(targets: dict[str, str]) -> str:
    """The device the ranker and retrieval models ran on, as far as this process knows: the
    self-started stack serves on the CPU (StackConfig's handler defaults); a target serves where
    its `foryou serve phoenix --device` put it."""
    if targets:
        return "as the target was started (`foryou serve phoenix --device`; cpu by default)"
    return "cpu (the self-started stack)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_bounds(args.requests, args.duration or 1.0)
    targets = _parse_targets(args.target)
    t_start = time.monotonic()
    load0 = os.getloadavg()
    stack_info: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if targets:
            addresses = targets
            world_dir = args.world or str(Path(os.environ.get("FORYOU_DATA_DIR", ".foryou")) / "world")
            if not Path(world_dir, "world.json").exists():
                raise SystemExit(f"no saved world at {world_dir}: pass --world DIR (payloads need its ids)")
            pids: dict[str, int | None] = {}
            for name, addr in addresses.items():
                host, port = addr.rsplit(":", 1)
                local = host in ("127.0.0.1", "localhost", "0.0.0.0", "[::1]", "::1")
                pids[name] = args.server_pid or (local_pid_for_port(int(port)) if local else None)
        else:
            from load_stack import LocalStack

            print("starting a stack (embedded broker + Redis, world, untrained models) in a subprocess…")
            info = stack.enter_context(LocalStack(args.world_preset, args.models))
            addresses, world_dir = info.addresses, info.world_dir
            pids = dict.fromkeys(addresses, info.pid)
            stack_info = asdict(info)
            print(f"stack pid {info.pid} up in {info.startup_s:.1f} s: {addresses}")
            print("server RSS and CPU below are this one process's: all four services, like `foryou up`")
        runs, sats, sizes = asyncio.run(_run_services(args, addresses, world_dir, pids))
        hwm = {k: _proc_status_kb(p, "VmHWM") for k, p in pids.items() if p}
    tty = sys.stdout.isatty()
    if runs:
        print_runs(runs, tty)
    if sats:
        print_saturation(sats, tty)
        for s in sats:
            if s.bound != "server":
                print(f"note: {s.service}: search ended at {s.bound}")
    device = phoenix_device(targets)
    print(f"phoenix device: {device}")
    print(
        f"payloads: {sizes}; load average {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}; "
        f"{os.cpu_count()} CPUs; {time.monotonic() - t_start:.0f} s in total"
    )
    if args.json:
        out = {
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "loadavg_start": load0,
                "loadavg_end": os.getloadavg(),
            },
            "stack": stack_info,
            "targets": targets,
            "phoenix_device": device,
            "payloads": sizes,
            "server_peak_rss_lifetime_kb": hwm,
            "runs": [r.to_json() for r in runs],
            "saturation": [s.to_json() for s in sats],
            "seconds": time.monotonic() - t_start,
        }
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
