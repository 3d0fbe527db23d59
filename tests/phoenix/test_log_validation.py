"""Bring-your-own-log: one-line validation messages, defaults, action names, hold-out options, and a
failed training run that leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from foryou.core.actions import ACTION_NAMES, action_code
from phoenix.holdout import Holdout
from phoenix.log_validation import LogError, validate_log
from protos import events_pb2


def _log(**cols: list[object]) -> pl.DataFrame:
    base: dict[str, list[object]] = {
        "user_id": [1, 1, 2, 2],
        "post_id": [5, 6, 7, 8],
        "action": ["favorite", "reply", "1", "SERVER_TWEET_REPLY"],  # names, codes, enum names
        "timestamp_ms": [1, 2, 3, 4],
    }
    base.update(cols)
    return pl.DataFrame(base)


def test_one_name_per_action_covers_the_enum() -> None:
    codes = set(events_pb2.ActionName.values()) - {events_pb2.ActionName.INVALID}
    assert set(ACTION_NAMES) == codes
    assert len(set(ACTION_NAMES.values())) == len(ACTION_NAMES)
    assert action_code("favorite") == action_code("SERVER_TWEET_FAV") == action_code("1") == 1


def test_names_codes_and_defaults() -> None:
    out = validate_log(_log())
    assert out["action"].to_list() == [1, 4, 1, 4]
    assert out["author_id"].to_list() == [5, 6, 7, 8]  # default: the post id
    assert out["product_surface"].to_list() == [0] * 4 and out["dwell_ms"].to_list() == [0] * 4
    assert out.columns == [
        "user_id",
        "post_id",
        "author_id",
        "action",
        "timestamp_ms",
        "product_surface",
        "dwell_ms",
    ]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            _log(action=["favorite", "fav", "fav", "reply"]),
            "x.parquet: column action: unknown value 'fav' in 2 rows; expected one of ",
        ),
        (_log(action=[1, 0, 4, 1]), "column action: unknown value '0' in 1 rows"),
        (_log().drop("timestamp_ms"), "missing column(s) timestamp_ms; a log needs user_id, "),
        (_log(user_id=[1, None, 2, 2]), "column user_id: 1 null values"),
        (_log(post_id=["a", "6", "7", "8"]), "column post_id: non-integer value 'a' in 1 rows"),
        (_log(user_id=[1, 0, -3, 2]), "column user_id: 2 rows with ids <= 0"),
    ],
)
def test_validation_messages_are_one_line(frame: pl.DataFrame, message: str) -> None:
    with pytest.raises(LogError) as e:
        validate_log(frame, "x.parquet")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_holdout_options() -> None:
    users = np.array([1, 1, 1, 2, 3, 3])
    ts = np.array([10, 20, 30, 5, 40, 50])
    assert Holdout.parse("last:1").eval_mask(users, ts).tolist() == [0, 0, 1, 0, 0, 1]  # user 2: 1 row, kept
    assert Holdout.parse("last:2").eval_mask(users, ts).tolist() == [0, 1, 1, 0, 0, 0]
    assert Holdout.parse("time:0.3").eval_mask(users, ts).tolist() == [0, 0, 0, 0, 1, 1]
    assert not Holdout.parse("none").eval_mask(users, ts).any()
    assert Holdout.resolve("", 0.15) == Holdout("time", 0.15)
    for bad in ("last:0", "time:1.5", "newest", "last:1.5"):
        with pytest.raises(ValueError, match="--holdout"):
            Holdout.parse(bad)


def test_failed_training_leaves_no_output(tmp_path: Path) -> None:
    from phoenix.ranker.config import RankerConfig, TrainConfig
    from phoenix.ranker.train import train_ranker

    log = tmp_path / "log.parquet"
    _log(action=["favorite", "fav", "reply", "reply"]).write_parquet(log)
    out = tmp_path / "out"
    with pytest.raises(LogError):
        train_ranker(log, out, TrainConfig(model=RankerConfig.tiny(), progress=False))
    assert not out.exists()
    # a positives-only log without sampled negatives is refused, not trained into a useless model
    validate_log(_log()).write_parquet(log)
    with pytest.raises(ValueError, match="positives-only"):
        train_ranker(log, out, TrainConfig(model=RankerConfig.tiny(), negatives=0, progress=False))
    assert not out.exists()
