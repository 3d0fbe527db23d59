"""The web page's parts without a stack: the feed view built from a debug response, the model
page's evaluation tables, and `foryou ui`'s one-line error for a port in use."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from foryou.app.cli import app
from foryou.app.ui.feed import GROUP_ROWS, feed_view, weight_of
from foryou.app.ui.models import metric_tables
from protos import home_mixer_pb2 as hm


def _response() -> hm.GetDebugScoredPostsResponse:
    r = hm.GetDebugScoredPostsResponse(model_version="ranker-7-abc", query_features={"viewer_id": "9"})
    r.params.update({"favorite_weight": "0.5", "report_weight": "-234", "cont_dwell_time_weight": "0.004"})
    for name in ("SelfPostFilter", "MutedKeywordFilter", "OtherStage"):
        r.stages.add(stage="filter", component=name)
    for pos in (1, 0):
        c = r.candidates.add(post_id=100 + pos, outcome="selected", position=pos, final_score=1.0 - pos)
        c.action_probs.update({"favorite": 0.2, "report": 0.001, "dwell_time": 3.0, "unweighted": 0.5})
    for i in range(GROUP_ROWS + 3):  # more than a group shows
        r.candidates.add(post_id=1000 + i, outcome="filtered", filtered_by="MutedKeywordFilter")
    r.candidates.add(post_id=7, outcome="filtered", filtered_by="SelfPostFilter")
    r.candidates.add(post_id=8, outcome="not_selected", final_score=0.1)
    r.candidates.add(post_id=9, outcome="not_selected", final_score=0.3)
    return r


def test_feed_view_orders_groups_and_weighs_heads() -> None:
    v = feed_view(9, _response(), model_link="ranker-0007")
    assert [r.c.post_id for r in v.served] == [100, 101] and [r.rank for r in v.served] == [1, 2]
    # removed candidates by filter, the filters in pipeline order; a long group is cut, its total kept
    assert list(v.removed) == ["SelfPostFilter", "MutedKeywordFilter"]
    assert [r.c.post_id for r in v.removed["SelfPostFilter"]] == [7]
    assert len(v.removed["MutedKeywordFilter"]) == GROUP_ROWS
    assert v.removed_total == {"SelfPostFilter": 1, "MutedKeywordFilter": GROUP_ROWS + 3}
    assert [r.c.post_id for r in v.not_selected] == [9, 8] and v.not_selected_total == 2
    heads = {h.name: h for h in v.served[0].heads}
    assert heads["favorite"].weight == 0.5 and heads["dwell_time"].weight == 0.004
    assert heads["unweighted"].weight is None
    # the largest weighted terms by magnitude: report (0.001 × -234) before favorite (0.2 × 0.5)
    assert [h.name for h in v.served[0].top] == ["report", "favorite", "dwell_time"]
    assert v.features == [("viewer_id", "9")]
    assert weight_of({"x_weight": "oops"}, "x") is None


def test_metric_tables_make_matrices_of_nested_metrics() -> None:
    metrics = {
        "steps": 3,
        "auc": {"fav": 0.61, "reply": 0.5},
        "eval": {"metrics": {"model": {"fav": {"roc_auc": 0.6}, "reply": {"roc_auc": 0.5, "pr_auc": 0.1}}}},
        "curve": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}],
        "actions": ["fav", "reply"],
    }
    scalars, matrices = metric_tables(metrics)
    assert (
        ("steps", "3") in scalars and ("auc.fav", "0.61") in scalars and ("actions", "fav, reply") in scalars
    )
    by_title = {m.title: m for m in matrices}
    model = by_title["eval.metrics.model"]
    assert model.columns == ["roc_auc", "pr_auc"]
    assert model.rows == [("fav", ["0.6", ""]), ("reply", ["0.5", "0.1"])]
    assert by_title["curve"].rows == [("0", ["1", "2"]), ("1", ["2", "1.5"])]


def test_ui_port_in_use_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = CliRunner().invoke(app, ["ui", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: web page: cannot listen on 127.0.0.1:{port} (Address already in use)"
    ]
