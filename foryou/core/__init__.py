"""L0, the shared core: settings, Kafka and gRPC helpers, serving lifecycle, logs, metrics,
snowflake ids, user-state keys and encodings, net utilities and shared event decoding.
Imports nothing of the project but `protos`."""
