"""L4, the application: the CLI (one module per command group), the demo, the in-process stack,
the embedded-infrastructure launcher, replay, and in-process wiring between products."""
