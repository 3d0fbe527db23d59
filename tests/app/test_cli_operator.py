"""The CLI an operator scripts against (issue 21): piped output at 80 columns keeps whole post ids
and every column, `--json` parses, a user error is one line with a non-zero exit (`--debug` shows
the traceback), `foryou feed` / `foryou call` / the Python client find a running stack through
its address file, `infra down` refuses while a running process uses the infrastructure."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection
from rich.console import Console
from rich.table import Table

from foryou.app import infra
from foryou.app.cli.common import print_metrics, show_table, summarize_metrics
from foryou.app.client import Client
from foryou.app.running import read_addresses, remove_addresses, write_addresses
from foryou.core.net import free_port
from foryou.core.settings import Settings
from protos import home_mixer_pb2 as hm
from protos import home_mixer_pb2_grpc

# snowflake-sized ids: 19 digits, the kind a narrow table cuts
SERVED = [1_790_000_000_000_000_001 + i for i in range(3)]
NOT_SELECTED = [1_790_000_000_000_100_000 + i for i in range(30)]
FILTERED = {1_790_000_000_000_200_001: "AgeFilter", 1_790_000_000_000_200_002: "MutedKeywordFilter"}


def _debug_response() -> hm.GetDebugScoredPostsResponse:
    r = hm.GetDebugScoredPostsResponse(request_id="req-1", model_version="ranker-0001-abc")
    for pos, pid in enumerate(SERVED):
        c = r.candidates.add(
            post_id=pid, author_id=5, outcome="selected", position=pos, final_score=1 - pos / 10
        )
        c.action_probs.update({"favorite": 0.31, "reply": 0.02, "retweet": 0.05})
        c.fields["author_screen_name"] = "a_rather_long_screen_name"
    for i, pid in enumerate(NOT_SELECTED):  # more than `--limit` shows: they must not hide the removed
        r.candidates.add(
            post_id=pid, author_id=6, outcome="not_selected", position=-1, final_score=0.5 - i / 100
        )
    for pid, name in FILTERED.items():
        r.candidates.add(post_id=pid, author_id=7, outcome="filtered", filtered_by=name, position=-1)
    return r


class _HomeMixer(home_mixer_pb2_grpc.ScoredPostsServiceServicer):
    def __init__(self) -> None:
        self.logged: list[int] = []

    def GetScoredPosts(self, request: hm.GetScoredPostsRequest, context: object) -> hm.GetScoredPostsResponse:
        resp = hm.GetScoredPostsResponse(request_id=f"for-{request.viewer_id}")
        for pid in SERVED:
            resp.scored_posts.add(post_id=pid, author_id=5, score=0.5, in_network=True)
        return resp

    def GetDebugScoredPosts(
        self, request: hm.GetDebugScoredPostsRequest, context: object
    ) -> hm.GetDebugScoredPostsResponse:
        return _debug_response()

    def LogEngagements(self, request: hm.LogEngagementsRequest, context: object) -> hm.LogEngagementsResponse:
        self.logged += [e.post_id for e in request.events]
        return hm.LogEngagementsResponse(accepted=len(request.events))


@pytest.fixture(scope="module")
def home_mixer() -> Iterator[tuple[str, _HomeMixer]]:
    """A stand-in home_mixer (canned responses) with server reflection, as the real one has."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = _HomeMixer()
    home_mixer_pb2_grpc.add_ScoredPostsServiceServicer_to_server(servicer, server)
    names = (hm.DESCRIPTOR.services_by_name["ScoredPostsService"].full_name, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    server.start()
    yield address, servicer
    server.stop(0)


@pytest.fixture
def running_stack(home_mixer: tuple[str, _HomeMixer], tmp_path: Path) -> Iterator[Path]:
    """A data directory whose address file (written by this live process) names the stand-in."""
    data = tmp_path / "data"
    write_addresses(data, {"home_mixer": home_mixer[0]})
    yield data
    remove_addresses(data)


def _foryou(
    *args: str, data_dir: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """`foryou ARGS` as a real process, stdout a pipe (not a TTY), 80 columns."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FORYOU_") and k != "WORLD_SIZE"}
    base.update({"COLUMNS": "80", "FORYOU_DATA_DIR": str(data_dir or "/nonexistent-foryou-data")})
    proc = subprocess.run(
        [sys.executable, "-m", "foryou.app.cli", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _one_error_line(rc: int, out: str, err: str) -> str:
    text = (out + err).strip()
    assert rc == 2, text
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert text.startswith("error:"), text
    return text


def test_piped_explain_at_80_columns_has_whole_ids_and_every_removed_candidate(running_stack: Path) -> None:
    rc, out, err = _foryou("feed", "9", "--explain", data_dir=running_stack)  # no --address: the file
    assert rc == 0, err
    tokens = set(out.split())
    for pid in [*SERVED, *FILTERED]:
        assert str(pid) in tokens  # whole, on one line, not cut or wrapped
    # the removed candidates with the filter that removed each, though 30 not-selected ones score higher
    lines = {line.split("\t")[1]: line for line in out.splitlines() if line.count("\t") > 3}
    for pid, name in FILTERED.items():
        assert f"filtered: {name}" in lines[str(pid)]
    assert sum(str(p) in tokens for p in NOT_SELECTED) == 20  # --limit's default
    assert "removed: AgeFilter 1, MutedKeywordFilter 1" in out


def test_feed_and_explain_json_parse(running_stack: Path) -> None:
    rc, out, _ = _foryou("feed", "9", "--json", data_dir=running_stack)
    assert rc == 0 and [int(p["post_id"]) for p in json.loads(out)["scored_posts"]] == SERVED
    rc, out, _ = _foryou("feed", "9", "--explain", "--json", data_dir=running_stack)
    cands = json.loads(out)["candidates"]
    assert rc == 0 and len(cands) == len(SERVED) + len(NOT_SELECTED) + len(FILTERED)
    assert {int(c["post_id"]): c["filtered_by"] for c in cands if c["outcome"] == "filtered"} == FILTERED


def test_call_by_reflection_and_the_python_client(
    running_stack: Path, home_mixer: tuple[str, _HomeMixer]
) -> None:
    rc, out, err = _foryou(
        "call", "home_mixer", "GetScoredPosts", '{"viewer_id": 42}', data_dir=running_stack
    )
    assert rc == 0, err
    resp = json.loads(out)
    assert resp["request_id"] == "for-42" and len(resp["scored_posts"]) == len(SERVED)
    rc, out, err = _foryou("call", "home_mixer", "GetScoredPosts", '{"viewer": 42}', data_dir=running_stack)
    assert "viewer" in _one_error_line(rc, out, err)  # a body that does not fit the request type

    client = Client(data_dir=str(running_stack), settings=Settings(data_dir=str(running_stack)))
    assert client.address == home_mixer[0]
    assert [p.post_id for p in client.feed(42).scored_posts] == SERVED
    assert len(client.debug_feed(42).candidates) == len(SERVED) + len(NOT_SELECTED) + len(FILTERED)
    assert client.log_engagements([{"user_id": 42, "post_id": 77, "action": 1}]) == 1
    assert 77 in home_mixer[1].logged
    assert client.call("home_mixer", "GetScoredPosts", {"viewer_id": 3})["request_id"] == "for-3"


def test_address_file_of_a_dead_process_is_ignored(tmp_path: Path) -> None:
    write_addresses(tmp_path, {"home_mixer": "127.0.0.1:1"})
    assert read_addresses(tmp_path)["home_mixer"] == "127.0.0.1:1"  # type: ignore[index]
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    record = json.loads((tmp_path / "addresses.json").read_text()) | {"pid": int(dead.stdout)}
    (tmp_path / "addresses.json").write_text(json.dumps(record))
    assert read_addresses(tmp_path) is None


def test_user_errors_are_one_line_and_debug_shows_the_traceback() -> None:
    _one_error_line(*_foryou("feed", "1", "--address", "127.0.0.1:1"))  # unreachable service
    text = _one_error_line(*_foryou("eval", "retrieval", "--logs", "/nonexistent", "--model", "/nonexistent"))
    assert "/nonexistent" in text  # wrong model path
    _one_error_line(*_foryou("up", "--ports", "many"))  # bad flag value
    _one_error_line(*_foryou("ui", "--port", "99999"))
    _one_error_line(*_foryou("model", "list", env={"WORLD_SIZE": "2"}))  # torchrun: refused
    rc, out, err = _foryou(
        "--debug", "eval", "retrieval", "--logs", "/nonexistent", "--model", "/nonexistent"
    )
    assert rc != 0 and "Traceback" in out + err


def test_model_list_json_parses(tmp_path: Path) -> None:
    rc, out, _ = _foryou("model", "list", "--json", "--models", str(tmp_path))
    assert rc == 0 and json.loads(out) == []


def test_show_table_fits_or_falls_back_to_whole_values() -> None:
    table = Table("post", "path", "probabilities", title="wide")
    long_path = "/var/lib/foryou/models/ranker-0001-" + "x" * 60 + "/model.safetensors"
    table.add_row(str(SERVED[0]), long_path, "favorite 0.31, reply 0.02, retweet 0.05")
    for terminal in (False, True):  # piped, and a terminal too narrow for the table
        buf = io.StringIO()
        show_table(table, Console(file=buf, width=80, force_terminal=terminal))
        rows = buf.getvalue().splitlines()
        assert rows[0] == "# wide" and rows[1] == "post\tpath\tprobabilities"
        assert rows[2].split("\t") == [str(SERVED[0]), long_path, "favorite 0.31, reply 0.02, retweet 0.05"]
    buf = io.StringIO()
    narrow = Table("a", "b")
    narrow.add_row("1", "2")
    show_table(narrow, Console(file=buf, width=80, force_terminal=True))
    assert "┃" in buf.getvalue() or "│" in buf.getvalue()  # fits: the rich table


def test_demo_feed_table_keeps_the_probability_column_at_80_columns() -> None:
    from foryou.app.demo import _print_feed

    buf = io.StringIO()
    _print_feed(Console(file=buf, width=80), 9, _debug_response())
    out = buf.getvalue()
    assert "top action probabilities" in out and "favorite 0.31" in out
    assert all(str(pid) in out.split() for pid in SERVED)


def test_metric_summary_is_short_with_one_name_per_action() -> None:
    per_action = {"roc_auc": 0.6, "pr_auc": 0.2, "rce": 0.1}
    actions = ["SERVER_TWEET_FAV", "SERVER_TWEET_REPLY", "SERVER_TWEET_RETWEET", "CLIENT_TWEET_CLICK"] + [
        f"CLIENT_TWEET_X{i}" for i in range(20)
    ]
    metrics = {
        "eval_requests": 10,
        "metrics": {s: dict.fromkeys(actions, per_action) for s in ("model", "oracle")},
        "gap_closure": dict.fromkeys(actions, 0.3),
        "headline": {"favorite": {"model": 0.6}, "repost": {"model": 0.55}},
    }
    summary = summarize_metrics(metrics)
    assert summary == {
        "eval_requests": 10,
        "gap_closure.favorite": 0.3,
        "gap_closure.reply": 0.3,
        "gap_closure.retweet": 0.3,
        "headline.favorite.model": 0.6,
        "headline.retweet.model": 0.55,
    }
    buf = io.StringIO()
    import foryou.app.cli.common as common

    saved = common.console
    common.console = Console(file=buf, width=80)
    try:
        print_metrics("eval", metrics, "eval.json")
    finally:
        common.console = saved
    out = buf.getvalue()
    assert "headline.retweet.model" in out and "SERVER_TWEET" not in out and "repost" not in out
    assert "6 of 171 metrics; all of them in eval.json" in out


def test_infra_down_refuses_while_a_running_process_uses_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path))
    infra.state_path(settings).write_text(json.dumps({"kafka_bootstrap": "127.0.0.1:1", "redis_url": ""}))
    user = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        infra.add_user(settings, user.pid)
        assert infra.live_users(settings) == [user.pid]
        rc, out, err = _foryou("infra", "down", data_dir=tmp_path)
        assert str(user.pid) in _one_error_line(rc, out, err) and "--force" in out + err
        assert infra.state_path(settings).exists()
        with pytest.raises(infra.InfraInUse):
            infra.down(settings)
        assert infra.down(settings, force=True) and not infra.state_path(settings).exists()
    finally:
        user.kill()
        user.wait()


def test_up_stops_loudly_when_its_infra_goes_away(monkeypatch: pytest.MonkeyPatch) -> None:
    from foryou.app import demo

    monkeypatch.setattr(demo, "INFRA_CHECK_S", 0.01)
    dead = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}", redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    with pytest.raises(demo.InfraLost, match="Kafka at 127.0.0.1"):
        asyncio.run(asyncio.wait_for(demo._watch_infra(dead), 30))
