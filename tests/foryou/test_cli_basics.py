"""The CLI's basics an operator scripts against: --version, LICENSE, one-line settings errors."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from foryou.app.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_version_prints_the_package_version_and_exits_zero() -> None:
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.stdout.strip() == f"foryou {_project()['version']}"


def test_license_file_matches_the_declared_license() -> None:
    assert _project()["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_bad_env_value_names_the_variable_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "foryou.app.cli", "model", "list"],
        env={"FORYOU_PARTITIONS": "four", "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 2
    assert "FORYOU_PARTITIONS='four'" in out and "an integer" in out
    assert "Traceback" not in out and len(out.splitlines()) == 1
