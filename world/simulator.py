"""`foryou simulate`: the world's users read the feeds the running system serves and the learning
loop retrains on what they did (docs/simulator.md).

Each round a seeded sample of users requests a feed from home_mixer over gRPC
(GetDebugScoredPosts: the same pipeline and `served` records as GetScoredPosts, plus every eligible
candidate, which the ground-truth baselines need), reads it top-down with position bias
(world.reader) and engages as the ground truth says; the engagements go back through home_mixer's
write path (LogEngagements) to Kafka, the follows / blocks / mutes they made go to `user-events`,
and the world's new posts arrive on `posts` as the clock passes them (world.arrivals). Every
`retrain_every` rounds the `retrain` step runs (the app's replay → join → train → gate → promote;
this layer cannot import it, so it comes in as a callable) and the round after it is served by
whatever the ranker then follows.

Time is the wall clock: home_mixer stamps `served` records with it, the engagement write path
validates against it and Thunder ages posts by it, so the world is generated with its `now` at the
end of the run and every event is stamped when it happens. A retrain window is [start of the
simulation, the moment the step runs): every engagement of those impressions was logged before."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from confluent_kafka import Producer

from foryou.core.settings import Settings
from foryou.core.tls import channel
from protos import events_pb2 as ev
from protos import home_mixer_pb2 as hm
from protos import home_mixer_pb2_grpc
from world import engagement_model as em
from world.arrivals import PostArrivals, publish_graph_edges
from world.feed_quality import feed_truth
from world.ground_truth import GroundTruth
from world.reader import PositionBias, read_feed

FEEDS = ("served", "newest", "best", "eligible")


@dataclass(slots=True)
class SimConfig:
    rounds: int = 30
    users_per_round: int = 50
    retrain_every: int = 5  # K: the retrain step runs after every K-th round (0 = never)
    seed: int = 0
    bias: PositionBias = field(default_factory=PositionBias)
    page_size: int = 5  # posts per feed request; the next page once the reader reaches its end
    feed_length: int = 20  # the most a reader reads; the figures rank feeds of this length
    request_timeout_s: float = 60.0


@dataclass(slots=True)
class RetrainOutcome:
    """What the retrain step reports: the registered version, whether it was promoted, and the
    model version the ranker serves once the step returns."""

    version: str
    promoted: bool
    serving: str
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


# (since_ms, until_ms) -> outcome; blocking (run in a worker thread while the services keep running)
RetrainStep = Callable[[int, int], RetrainOutcome]


@dataclass
class SimResult:
    """`rounds`: one row of figures per round; `users`: one row per (round, user) feed, with the
    user id, its experiment buckets and the model version that served it (per-bucket breakdowns
    group these: `foryou experiment report`)."""

    rounds: pl.DataFrame
    users: pl.DataFrame
    retrains: list[RetrainOutcome]
    start_ms: int = 0  # the first round's start: every event of the simulation is stamped after it

    def gap_closed(self, last: int = 1) -> float:
        """Share of the newest-first → best-possible gap (true P(favorite)) the served feeds closed,
        over the last `last` rounds' feeds."""
        return gap_share(self.users.filter(pl.col("round") > int(self.rounds["round"].max() or 0) - last))


def gap_share(users: pl.DataFrame) -> float:
    """(served - newest) / (best - newest) of the mean true P(favorite) over these feeds."""
    m = users.select(pl.col(f"{f}_favorite").mean() for f in ("served", "newest", "best")).row(0)
    gap = m[2] - m[1]
    return float((m[0] - m[1]) / gap) if gap and not math.isnan(gap) else float("nan")


class Simulator:
    def __init__(
        self,
        settings: Settings,
        home_mixer: str,
        truth: GroundTruth,
        users: list[int],
        config: SimConfig | None = None,
        *,
        arrivals: PostArrivals | None = None,
        producer: Producer | None = None,
        retrain: RetrainStep | None = None,
        on_round: Callable[[dict[str, Any]], None] | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        """`users`: who may be sampled (e.g. the users who follow someone: with retrieval off, the
        others get empty feeds). `producer`: for the graph edges (and `arrivals`' posts)."""
        if not users:
            raise ValueError("no users to simulate")
        self.settings, self.address, self.truth = settings, home_mixer, truth
        self.users = np.asarray(sorted(users), dtype=np.int64)
        self.config = config or SimConfig()
        self.arrivals, self.producer, self.retrain = arrivals, producer, retrain
        self.on_round = on_round or (lambda _row: None)
        self.clock_ms = clock_ms
        self.rng = np.random.default_rng(self.config.seed)

    async def run(self) -> SimResult:
        cfg = self.config
        start_ms = self.clock_ms()
        rounds: list[dict[str, Any]] = []
        users: list[dict[str, Any]] = []
        retrains: list[RetrainOutcome] = []
        async with channel(self.address, self.settings, aio=True) as ch:
            stub = home_mixer_pb2_grpc.ScoredPostsServiceStub(ch)
            for r in range(1, cfg.rounds + 1):
                row, feeds = await self._round(stub, r)
                users += feeds
                if self.retrain is not None and cfg.retrain_every and r % cfg.retrain_every == 0:
                    if self.producer is not None:
                        self.producer.flush(30)
                    out = await asyncio.to_thread(self.retrain, start_ms, self.clock_ms())
                    retrains.append(out)
                    row |= {"retrained": out.version, "promoted": out.promoted, "retrain_s": out.seconds}
                rounds.append(row)
                self.on_round(row)
        if self.producer is not None:
            self.producer.flush(30)
        return SimResult(
            pl.DataFrame(rounds, infer_schema_length=None), pl.DataFrame(users), retrains, start_ms
        )

    async def _round(
        self, stub: home_mixer_pb2_grpc.ScoredPostsServiceStub, r: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        cfg = self.config
        t0 = time.monotonic()
        created = deleted = 0
        if self.arrivals is not None:
            created, deleted = self.arrivals.publish_due(self.clock_ms())
        sample = self.rng.choice(self.users, size=min(cfg.users_per_round, len(self.users)), replace=False)
        feeds: list[dict[str, Any]] = []
        events: list[Any] = []
        edges: list[tuple[int, int, int]] = []
        empty = 0
        for user in sample.tolist():
            feed = await self._read(stub, user)
            if feed is None:
                empty += 1
                continue
            user_row, read_events, read_edges = feed
            events += read_events
            edges += read_edges
            feeds.append({"round": r} | user_row)
        logged = await self._log(stub, events)
        now = self.clock_ms()
        if edges and self.producer is not None:
            publish_graph_edges(self.settings, self.producer, edges, now)
            follows = [(u, a) for u, a, kind in edges if kind == ev.UserEventType.USER_EVENT_FOLLOW]
            if follows:
                self.truth.add_follows(*map(np.array, zip(*follows, strict=True)))
        frame = pl.DataFrame(feeds) if feeds else None
        row: dict[str, Any] = {"round": r, "time_ms": now, "feeds": len(feeds), "empty_feeds": empty}
        if frame is not None:
            row |= {
                c: float(frame[c].mean() or 0.0)
                for c in frame.columns
                if c.endswith(("_favorite", "_negative"))
            }
            row["gap_closed"] = gap_share(frame)
            row["model_versions"] = ",".join(sorted(set(frame["model_version"].to_list())))
            row["read"] = int(frame["read"].sum())
        row |= {
            "engagements": logged,
            "graph_edges": len(edges),
            "new_posts": created,
            "deleted_posts": deleted,
        }
        row |= {"seconds": time.monotonic() - t0, "retrained": "", "promoted": False, "retrain_s": 0.0}
        return row, feeds

    async def _read(
        self, stub: home_mixer_pb2_grpc.ScoredPostsServiceStub, user: int
    ) -> tuple[dict[str, Any], list[Any], list[tuple[int, int, int]]] | None:
        """One user's session: pages of `page_size` posts, each requested once the reader has read
        the previous one (with its posts as served_ids, like an app's infinite scroll), so only the
        posts a reader reached are served and logged. The ground-truth figures come from the first
        page's ranking of all eligible candidates, cut at `feed_length`. None: an empty feed."""
        cfg = self.config
        served: list[int] = []
        events: list[Any] = []
        edges: list[tuple[int, int, int]] = []
        truth: dict[str, dict] = {}
        version, bucket, read = "", "", 0
        while len(served) < cfg.feed_length:
            query = hm.GetScoredPostsRequest(
                viewer_id=user, served_ids=served, is_bottom_request=bool(served)
            )
            size = min(cfg.page_size, cfg.feed_length - len(served))
            req = hm.GetDebugScoredPostsRequest(query=query, param_overrides={"result_size": str(size)})
            resp = await stub.GetDebugScoredPosts(req, timeout=cfg.request_timeout_s)
            page = sorted((c for c in resp.candidates if c.outcome == "selected"), key=lambda c: c.position)
            if not served:
                if not page:
                    return None
                truth, version = feed_truth(self.truth, user, resp, cfg.feed_length), resp.model_version
                bucket = resp.experiment_bucket  # the viewer's experiment buckets (params file)
            if not page:
                break
            got = read_feed(
                self.truth,
                user,
                np.array([c.post_id for c in page]),
                np.array([c.author_id for c in page]),
                self.clock_ms(),
                self.rng,
                cfg.bias,
                start=len(served),
            )
            events += got.events
            edges += got.graph
            read += got.read
            served += [c.post_id for c in page]
            if got.stopped:
                break
        row = {
            "user_id": user,
            "bucket": bucket,
            "model_version": version,
            "posts": len(served),
            "read": read,
        }
        row |= {"engagements": len(events), "favorites": sum(e.action == em.FAV for e in events)}
        row |= {f"{f}_{m}": truth[f][m] for f in FEEDS for m in ("favorite", "negative")}
        return row, events, edges

    async def _log(self, stub: home_mixer_pb2_grpc.ScoredPostsServiceStub, events: list[Any]) -> int:
        """LogEngagements in batches of its limit (1,000); returns the events Kafka acknowledged."""
        accepted = 0
        for i in range(0, len(events), 1000):
            req = hm.LogEngagementsRequest(events=events[i : i + 1000])
            accepted += (await stub.LogEngagements(req, timeout=self.config.request_timeout_s)).accepted
        return accepted


def write_outputs(result: SimResult, out_dir: str | Path, title: str = "") -> dict[str, Path]:
    """rounds.parquet, feeds.parquet (per round and user) and lift.png under `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"rounds": out / "rounds.parquet", "feeds": out / "feeds.parquet", "plot": out / "lift.png"}
    result.rounds.write_parquet(paths["rounds"])
    result.users.write_parquet(paths["feeds"])
    plot_rounds(result.rounds, paths["plot"], title)
    return paths


def plot_rounds(rounds: pl.DataFrame, path: Path, title: str = "") -> None:
    """True mean P(favorite) (top) and P(negative feedback) (bottom) per round of the served,
    newest-first and best-possible feeds; dotted lines where a retrain promoted a version."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True, height_ratios=(2, 1))
    x = rounds["round"].to_numpy()
    styles = {"served": ("served", "C0", "-"), "newest": ("newest-first", "C7", "--")}
    styles["best"] = ("best possible", "C2", "--")
    for ax, metric, label in (
        (axes[0], "favorite", "true P(favorite)"),
        (axes[1], "negative", "true P(negative)"),
    ):
        for feed, (name, color, ls) in styles.items():
            col = f"{feed}_{metric}"
            if col in rounds.columns:
                ax.plot(x, rounds[col].to_numpy(), ls, color=color, label=name, marker="o", ms=3)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        for r in rounds.filter(pl.col("promoted"))["round"].to_list():
            ax.axvline(r + 0.5, color="C3", ls=":", lw=1)
    axes[0].legend(loc="best", fontsize=8)
    axes[1].set_xlabel("round (dotted: a retrained version promoted after this round)")
    if title:
        axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
