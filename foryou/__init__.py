"""foryou: CLI, settings, embedded infrastructure and shared Kafka/Redis helpers."""

__version__ = "0.1.0"
