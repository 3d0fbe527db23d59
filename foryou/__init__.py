"""foryou: the shared core (`foryou.core`, L0), the Redis ingesters (`foryou.ingest`, L2) and the
application (`foryou.app`, L4: CLI, demo, stack, launcher). See docs/ARCHITECTURE.md."""

__version__ = "0.1.0"
