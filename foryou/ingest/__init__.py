"""Kafka -> Redis user-state ingesters: social graph (user-events), action sequences (engagements)
and post core data (posts). Run them with `foryou.ingest.runner.IngestService`."""
