"""`foryou replay TOPIC`: a topic's messages in a time window into a directory of Parquet parts +
manifest (foryou.app.replay; rules in docs/OPERATIONS.md, "Replay and the training dataset").

Registered at the root by `toplevel.TOP_LEVEL`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from foryou.app.cli.common import (
    AsJson,
    console,
    ctx_settings,
    fail,
    iso_ms,
    parse_time_ms,
    resolve_infra,
    show_table,
)

if TYPE_CHECKING:  # confluent_kafka and polars: imported inside the command (`foryou --help` stays fast)
    from rich.progress import Progress, TaskID

    from foryou.app.replay import ReplayProgress, ReplaySummary
    from foryou.core.settings import Settings

REPLAY_TOPICS = ("engagements", "served", "posts", "user-events")
TIME_HELP = "epoch ms, ISO-8601 (no zone = UTC), `now`, or a duration ago (24h, 7d)"


def replay(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help=" | ".join(REPLAY_TOPICS))],
    out: Annotated[str, typer.Option(help="Output directory (Parquet parts + manifest.json; reruns resume)")],
    since: Annotated[str, typer.Option(help=f"Keep messages with timestamp >= since: {TIME_HELP}")] = "0",
    until: Annotated[
        str | None, typer.Option(help=f"Keep messages with timestamp < until (default: none): {TIME_HELP}")
    ] = None,
    merge: Annotated[
        str | None,
        typer.Option(help="Also write the parts as one Parquet file here (e.g. for `train ranker --logs`)"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds (0 = never)")] = 0.0,
    connect_timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker to answer")] = 15.0,
    part_rows: Annotated[int, typer.Option(help="Rows per Parquet part")] = 250_000,
    as_json: AsJson = False,
) -> None:
    """Replay a Kafka topic into Parquet (e.g. the engagement log that trains the models).

    A time window of any topic into a directory of Parquet parts + manifest.json; rerunning on the
    same directory resumes an interrupted run and adds only what is new."""
    from confluent_kafka import KafkaException

    from foryou.app.replay import ReplayTimeout, merge_parts, replay_topic

    if topic not in REPLAY_TOPICS:
        fail(ValueError(f"unknown topic {topic!r}: one of {', '.join(REPLAY_TOPICS)}"))
    try:
        since_ms = parse_time_ms(since)
        until_ms = None if until is None else parse_time_ms(until)
    except ValueError as e:
        fail(e)
    if until_ms is not None and until_ms <= since_ms:
        fail(ValueError(f"empty window: until ({iso_ms(until_ms)}) is not after since ({iso_ms(since_ms)})"))
    if Path(out).suffix == ".parquet" and not Path(out).is_dir():
        # the old command wrote one file: a replay is a resumable directory now
        fail(ValueError(f"--out is a directory now; try --out {Path(out).with_suffix('')} --merge {out}"))
    try:
        settings = kafka_settings(ctx)
        check_broker(settings, connect_timeout)
        with ReplayBar(topic, quiet=as_json) as bar:
            res = replay_topic(
                settings,
                topic,
                since_ms,
                until_ms,
                out,
                part_rows=part_rows,
                progress=bar.update,
                timeout_s=timeout or None,
            )
        merged = merge_parts(out, merge) if merge else None
    except (ReplayTimeout, ValueError, RuntimeError, KafkaException, OSError) as e:
        fail(e)
    except KeyboardInterrupt:  # the manifest covers every written part: nothing to clean up
        console.print("[yellow]interrupted:[/yellow] rerun the same command to continue where it stopped")
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps(_summary_dict(res, merge, merged)))  # plain print: never wrapped
    else:
        _print_summary(res, merge, merged)


def kafka_settings(ctx: typer.Context) -> Settings:
    """Replay needs Kafka only: Redis may stay unconfigured."""
    settings = ctx_settings(ctx)
    return settings if settings.kafka_bootstrap else resolve_infra(settings)


def check_broker(settings: Settings, timeout_s: float) -> None:
    """Fail fast on an unreachable broker: the replay itself waits for a slow broker forever (or
    its --timeout), which is right for a busy broker and wrong for a typo in the address."""
    import logging
    import time

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from foryou.core.kafka import admin_config

    quiet = logging.getLogger("foryou.cli.kafka-probe")  # librdkafka's connect errors: not the user's line
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    admin = AdminClient(admin_config(settings), logger=quiet)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=min(2.0, max(0.1, timeout_s)))
            return
        except KafkaException:
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"cannot reach Kafka at {settings.kafka_bootstrap} within {timeout_s:g} s"
                ) from None


class ReplayBar:
    """A rich progress bar fed by replay_topic's `progress` callback: messages of the offsets left
    when the run started, with messages/s and MB/s."""

    def __init__(self, topic: str, quiet: bool = False) -> None:
        self.topic, self.quiet = topic, quiet
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> ReplayBar:
        if self.quiet:
            return self
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,  # the summary follows (or the one error line): no stale bar above it
        )
        self.progress.start()
        self.task = self.progress.add_task(f"replay {self.topic}", total=None, count="", rate="")
        return self

    def update(self, p: ReplayProgress) -> None:
        if self.progress is None or self.task is None:
            return
        dt = max(p.elapsed_s, 1e-6)
        rate = f"{p.messages / dt:,.0f} msg/s  {p.bytes / dt / 1e6:.1f} MB/s  {p.parts} parts"
        if p.malformed:
            rate += f"  [yellow]{p.malformed:,} malformed[/yellow]"
        total = max(p.total, p.messages)  # the window's end may come first: then the bar stops short
        count = f"{p.messages:,}/{total:,} msgs"
        self.progress.update(self.task, completed=p.messages, total=total, count=count, rate=rate)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _summary_dict(res: ReplaySummary, merge: str | None, merged: int | None) -> dict[str, Any]:
    return {
        "topic": res.topic,
        "kafka_topic": res.kafka_topic,
        "since_ms": res.since_ms,
        "until_ms": res.until_ms,
        "out": str(res.out_dir),
        "messages": res.messages,
        "rows": res.rows,
        "malformed": res.malformed,
        "outside": res.outside,
        "bytes": res.bytes,
        "added_rows": res.added_rows,
        "seconds": round(res.seconds, 3),
        "partitions": {
            str(p): {"start": st.start, "next": st.next, "window_end": st.window_end}
            for p, st in res.partitions.items()
        },
        "files": [str(f) for f in res.files],
        **({"merged": merge, "merged_rows": merged} if merge else {}),
    }


def _print_summary(res: ReplaySummary, merge: str | None, merged: int | None) -> None:
    window = f"{iso_ms(res.since_ms)} → {iso_ms(res.until_ms) if res.until_ms is not None else 'open'}"
    table = Table("field", "value", title=f"replay of {res.kafka_topic}", show_header=False)
    rate = res.bytes / max(res.seconds, 1e-6) / 1e6
    for k, v in (
        ("window", window),
        ("messages", f"{res.messages:,} in the window ({res.added_rows:,} rows added by this run)"),
        ("rows", f"{res.rows:,}"),
        ("malformed", f"{res.malformed:,} (skipped; dead-lettered when first consumed)"),
        ("outside", f"{res.outside:,} read before the window"),
        ("bytes", f"{res.bytes / 1e6:,.1f} MB"),
        ("time", f"{res.seconds:.1f} s ({rate:.1f} MB/s)"),
        ("files", f"{len(res.files)} part(s) + manifest.json in {res.out_dir}"),
    ):
        table.add_row(k, v)
    if merge:
        table.add_row("merged", f"{merged:,} rows in {merge}")
    show_table(table)
    parts = Table("partition", "offsets read", "rows", "malformed", "window end", title="per partition")
    for p, st in res.partitions.items():
        parts.add_row(
            str(p),
            f"[{st.start:,}, {st.next:,})",
            f"{st.rows:,}",
            f"{st.malformed:,}",
            "reached" if st.window_end else "",
        )
    console.print(parts)
