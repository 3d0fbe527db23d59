"""One name per action (issue 21): stored enum-style keys read as the short names of
foryou.core.actions; other keys and values untouched."""

from __future__ import annotations

from foryou.core.actions import ACTION_NAMES, normalize_action_keys, short_action_name
from protos import events_pb2


def test_every_enum_name_reads_as_its_short_name() -> None:
    for code, name in ACTION_NAMES.items():
        assert short_action_name(events_pb2.ActionName.Name(code)) == name
        assert short_action_name(name) == name  # already short: kept
    assert short_action_name("repost") == "retweet"  # the old alias
    for other in ("roc_auc", "weighted_ndcg", "headline", "INVALID", "NOT_AN_ACTION", "1"):
        assert short_action_name(other) == other


def test_normalize_action_keys_renames_keys_at_any_depth_only() -> None:
    old = {
        "auc": {"SERVER_TWEET_FAV": 0.6, "CLIENT_TWEET_RECAP_DWELLED": None},
        "metrics": {"model": {"SERVER_TWEET_RETWEET": {"roc_auc": 0.7}}},
        "reasons": ["SERVER_TWEET_FAV ROC-AUC 0.6 is 0.1 below"],  # values are not keys: kept
        "runs": [{"SERVER_TWEET_REPLY": 3}],
        "weighted_ndcg": 0.5,
    }
    assert normalize_action_keys(old) == {
        "auc": {"favorite": 0.6, "dwell": None},
        "metrics": {"model": {"retweet": {"roc_auc": 0.7}}},
        "reasons": ["SERVER_TWEET_FAV ROC-AUC 0.6 is 0.1 below"],
        "runs": [{"reply": 3}],
        "weighted_ndcg": 0.5,
    }
    new = normalize_action_keys(old)
    assert normalize_action_keys(new) == new  # new-style metrics read unchanged
    assert old["auc"] == {"SERVER_TWEET_FAV": 0.6, "CLIENT_TWEET_RECAP_DWELLED": None}  # not mutated
