from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from foryou.app.replay import replay_topic
from foryou.core.kafka import make_producer
from foryou.core.settings import Settings
from protos import events_pb2 as ev


def test_settings_precedence_flags_over_env_over_defaults() -> None:
    env = {"FORYOU_REDIS_URL": "redis://env:1/0", "FORYOU_PARTITIONS": "8", "FORYOU_LOG_JSON": "false"}
    s = Settings.from_env(env, redis_url="redis://flag:2/0", kafka_bootstrap=None)
    assert s.redis_url == "redis://flag:2/0"
    assert s.partitions == 8 and s.log_json is False
    assert s.kafka_bootstrap == "" and s.posts_topic == "posts"
    assert Settings(topic_prefix="x.").topics()["x.posts.dlq"] == 1


@pytest.mark.integration
def test_replay_engagements_window_to_parquet(settings: Settings, tmp_path: Path) -> None:
    producer = make_producer(settings)
    topic = settings.topic("engagements")
    for i in range(10):
        e = ev.EngagementEvent(
            user_id=i % 3 + 1,
            post_id=100 + i,
            author_id=7,
            action=ev.SERVER_TWEET_FAV,
            timestamp_ms=1_000 + i,
            product_surface=ev.PRODUCT_SURFACE_HOME_TIMELINE,
        )
        producer.produce(topic, key=str(e.user_id).encode(), value=e.SerializeToString(), timestamp=1_000 + i)
    producer.produce(topic, value=b"\xffgarbage", timestamp=1_005)
    producer.flush(10)
    res = replay_topic(settings, "engagements", tmp_path / "log.parquet", since_ms=1_002, until_ms=1_008)
    df = pl.read_parquet(res.out)
    assert res.malformed == 1
    assert df["post_id"].to_list() == [102, 103, 104, 105, 106, 107]
    assert set(df.columns) == {
        "user_id",
        "post_id",
        "author_id",
        "action",
        "timestamp_ms",
        "product_surface",
        "dwell_ms",
    }
    assert (df["action"] == ev.SERVER_TWEET_FAV).all()
