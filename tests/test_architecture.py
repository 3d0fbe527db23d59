"""The layer rule and the no-cycle rule hold, and the cycle checker really finds cycles."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _checker():  # tools/ is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location("check_cycles", ROOT / "tools" / "check_cycles.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_project_has_no_import_cycle() -> None:
    assert _checker().find_cycle() is None


def test_checker_finds_a_cycle_hidden_inside_a_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from cyclepkg import a\n    return a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cycle = _checker().find_cycle(("cyclepkg",))
    assert cycle is not None and set(cycle) == {"cyclepkg.a", "cyclepkg.b"}


def test_layer_contracts_hold() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert "BROKEN" not in out.stdout and out.stdout.count("KEPT") >= 4
