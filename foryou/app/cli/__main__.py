"""`python -m foryou.app.cli …`, the same as the `foryou` console script (used by tests)."""

from foryou.app.cli import app

app()
