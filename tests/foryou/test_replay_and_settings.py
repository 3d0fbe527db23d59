"""Settings precedence. (The replay tests moved to tests/app/test_replay.py.)"""

from __future__ import annotations

from foryou.core.settings import Settings


def test_settings_precedence_flags_over_env_over_defaults() -> None:
    env = {"FORYOU_REDIS_URL": "redis://env:1/0", "FORYOU_PARTITIONS": "8", "FORYOU_LOG_JSON": "false"}
    s = Settings.from_env(env, redis_url="redis://flag:2/0", kafka_bootstrap=None)
    assert s.redis_url == "redis://flag:2/0"
    assert s.partitions == 8 and s.log_json is False
    assert s.kafka_bootstrap == "" and s.posts_topic == "posts"
    assert Settings(topic_prefix="x.").topics()["x.posts.dlq"] == 1
