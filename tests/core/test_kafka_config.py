"""FORYOU_KAFKA_CONFIG: any librdkafka property (security.protocol, sasl.*, ssl.*, ...) reaches every
Kafka client foryou makes (producer, consumer, admin, the consumers' dead-letter producers and
health-check admins); the real broker proves the properties are applied, not just stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from foryou.core.kafka import (
    BatchConsumer,
    admin_config,
    consumer_config,
    ensure_topics,
    kafka_properties,
    make_admin,
    make_producer,
    parse_kafka_config,
    producer_config,
)
from foryou.core.settings import Settings

SECURE = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "foryou",
    "sasl.password": "s3cret,with=odd chars",
    "ssl.ca.location": "/etc/ssl/certs/ca.pem",
}


def test_parse_the_three_forms(tmp_path: Path) -> None:
    assert parse_kafka_config("") == {}
    assert parse_kafka_config(json.dumps(SECURE)) == SECURE
    assert parse_kafka_config("security.protocol=SSL, ssl.ca.location = /ca.pem") == {
        "security.protocol": "SSL",
        "ssl.ca.location": "/ca.pem",
    }
    typed = '{"enable.ssl.certificate.verification": false, "socket.timeout.ms": 3000}'
    assert parse_kafka_config(typed) == {
        "enable.ssl.certificate.verification": "false",
        "socket.timeout.ms": "3000",
    }
    props = tmp_path / "client.properties"
    props.write_text(
        "# Java-style properties\n"
        "security.protocol=SASL_SSL\n"
        "sasl.jaas.config: org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
        "\n! also a comment\nssl.ca.location = /etc/ca.pem\n"
    )
    expected = {
        "security.protocol": "SASL_SSL",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.ca.location": "/etc/ca.pem",
    }
    assert parse_kafka_config(f"@{props}") == expected
    assert parse_kafka_config(str(props)) == expected
    with pytest.raises(ValueError):
        parse_kafka_config("security.protocol=SSL,nonsense")


def test_merged_into_every_client_config_from_the_environment() -> None:
    env = {"FORYOU_KAFKA_BOOTSTRAP": "broker:9093", "FORYOU_KAFKA_CONFIG": json.dumps(SECURE)}
    s = Settings.from_env(env)
    assert s.kafka_config == json.dumps(SECURE)
    for conf in (
        producer_config(s),
        producer_config(s, **{"linger.ms": 20}),
        consumer_config(s, "g"),
        consumer_config(s, "g", **{"fetch.min.bytes": 1}),
        admin_config(s),
    ):
        assert {k: conf[k] for k in SECURE} == SECURE
        assert conf["bootstrap.servers"] == "broker:9093"
    # the operator's value wins over a call site's tuning ...
    tuned = s.replace(kafka_config="linger.ms=50")
    assert producer_config(tuned, **{"linger.ms": 20})["linger.ms"] == "50"
    # ... but never over what carries the consumers' semantics
    hijack = s.replace(kafka_config="group.id=evil,enable.auto.commit=true,bootstrap.servers=x:1,acks=1")
    assert kafka_properties(hijack) == {"acks": "1"}
    conf = consumer_config(hijack, "mine")
    assert conf["group.id"] == "mine" and conf["enable.auto.commit"] is False
    assert conf["bootstrap.servers"] == "broker:9093"


@pytest.mark.integration
def test_every_client_uses_them_against_the_real_broker(settings: Settings) -> None:
    # properties librdkafka validates and applies: a plaintext client id works end to end ...
    props = "client.id=foryou-test,security.protocol=plaintext,socket.timeout.ms=9000"
    ok = settings.replace(kafka_config=props)
    ensure_topics(ok, {ok.topic("cfg"): 1})
    producer = make_producer(ok)
    producer.produce(ok.topic("cfg"), value=b"hello")
    assert producer.flush(10) == 0
    got: list[bytes] = []
    topic = ok.topic("cfg")
    c = BatchConsumer(
        ok, "cfg", [topic], bytes, lambda b: got.extend(d.value for d in b), replay_from_beginning=True
    )
    try:
        assert c.client_config["client.id"] == "foryou-test"
        for _ in range(50):
            c.poll_once(0.2)
            if got:
                break
        assert got == [b"hello"]
    finally:
        c.close()
    # ... and security.protocol=ssl really reaches librdkafka: it cannot talk to a plaintext broker
    tls = settings.replace(kafka_config="security.protocol=ssl,enable.ssl.certificate.verification=false")
    with pytest.raises(KafkaException):
        make_admin(tls).list_topics(timeout=2)
    with pytest.raises(KafkaException):
        ensure_topics(tls, {tls.topic("never"): 1}, timeout_s=2)
    # an unknown property fails loudly at client creation instead of being ignored
    with pytest.raises(KafkaException):
        make_producer(settings.replace(kafka_config="no.such.property=1"))
