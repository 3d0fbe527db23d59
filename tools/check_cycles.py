"""Fails when any two project modules import each other, directly or through others, counting
imports inside functions and under TYPE_CHECKING too (grimp sees every import statement)."""

from __future__ import annotations

import sys
from graphlib import CycleError, TopologicalSorter

import grimp

PACKAGES = ("protos", "candidate_pipeline", "foryou", "thunder", "phoenix", "home_mixer", "world")


def find_cycle(packages: tuple[str, ...] = PACKAGES) -> list[str] | None:
    """One import cycle among the modules of `packages` (importable top-level names), or None."""
    graph = grimp.build_graph(*packages)
    # a package's __init__ re-exporting its own modules is not a cycle between modules
    deps = {
        m: {d for d in graph.find_modules_directly_imported_by(m) if not m.startswith(d + ".")}
        for m in graph.modules
    }
    try:
        TopologicalSorter(deps).prepare()
    except CycleError as e:
        return list(e.args[1])
    return None


def main() -> int:
    cycle = find_cycle()
    if cycle:
        print("import cycle: " + " -> ".join(cycle))
        return 1
    print("no import cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
