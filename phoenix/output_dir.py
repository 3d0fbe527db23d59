"""A trainer's output folder left behind by a failed run is removed: a later run would take it for a
checkpoint or a resume point. Both trainers use it (the ranker keeps a folder once a resumable state
is in it): the folder is removed only if it did not exist or was empty when the run began, and
`keep(out)` is false."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def removed_on_failure(out: str | Path, keep: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yields `out` as a Path; on any exception (KeyboardInterrupt included) removes the folder if
    this run created it (absent or empty before) and `keep` does not say otherwise; re-raises."""
    path = Path(out)
    fresh = not path.exists() or (path.is_dir() and not any(path.iterdir()))
    try:
        yield path
    except BaseException:
        if fresh and path.is_dir() and not (keep is not None and keep(path)):
            shutil.rmtree(path, ignore_errors=True)
        raise
