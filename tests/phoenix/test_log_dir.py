"""The log directory format: which files are required or optional, and how paths resolve."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from phoenix.log_dir import (
    ENGAGEMENTS_FILE,
    ORACLE_FILE,
    POSTS_FILE,
    LogPaths,
    posts_file,
    resolve_logs,
    sids_source,
)
from phoenix.ranker.sids import resolve_sids


def _posts(path: Path, with_sid: bool) -> Path:
    cols: dict[str, object] = {"post_id": [1, 2], "author_id": [10, 11]}
    if with_sid:
        cols["sid"] = [[3], [4]]
    pl.DataFrame(cols).write_parquet(path)
    return path


def test_engagements_only_directory(tmp_path: Path) -> None:
    (tmp_path / ENGAGEMENTS_FILE).touch()
    assert resolve_logs(tmp_path) == LogPaths(tmp_path / ENGAGEMENTS_FILE, None, None)
    assert sids_source(tmp_path) is None


def test_optional_files_are_found(tmp_path: Path) -> None:
    for name in (ENGAGEMENTS_FILE, ORACLE_FILE):
        (tmp_path / name).touch()
    _posts(tmp_path / POSTS_FILE, with_sid=True)
    logs = resolve_logs(tmp_path)
    assert logs.oracle == tmp_path / ORACLE_FILE and logs.posts == tmp_path / POSTS_FILE
    assert sids_source(tmp_path) == tmp_path / POSTS_FILE
    sids = resolve_sids(tmp_path)
    assert sids is not None and len(sids) == 2


def test_posts_without_sids_are_no_sid_source(tmp_path: Path) -> None:
    (tmp_path / ENGAGEMENTS_FILE).touch()
    _posts(tmp_path / POSTS_FILE, with_sid=False)
    assert sids_source(tmp_path) is None
    assert sids_source(tmp_path, tmp_path / "x.parquet") == tmp_path / "x.parquet"  # explicit wins


def test_single_file_and_missing_paths(tmp_path: Path) -> None:
    log = tmp_path / "log.parquet"
    log.touch()
    assert resolve_logs(log) == LogPaths(log)
    assert sids_source(log) is None
    with pytest.raises(FileNotFoundError, match="no such file"):
        resolve_logs(tmp_path / "absent.parquet")
    with pytest.raises(FileNotFoundError, match=ENGAGEMENTS_FILE):
        resolve_logs(tmp_path)


def test_posts_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no posts Parquet file"):
        posts_file(tmp_path)
    p = _posts(tmp_path / POSTS_FILE, with_sid=False)
    assert posts_file(tmp_path) == p and posts_file(p) == p
