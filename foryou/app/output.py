"""How the CLI prints a table, anywhere: the rich table where it fits the terminal, else a plain
format that never cuts or wraps a value (stdout piped or redirected, or a terminal too narrow).
Shared by the commands (foryou.app.cli.common re-exports it) and the demo's narration."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def _cell(value: Any) -> str:
    if isinstance(value, Text):
        text = value.plain
    else:
        try:
            text = Text.from_markup(str(value)).plain
        except Exception:  # noqa: BLE001 - not markup after all: the value as it is
            text = str(value)
    return " ".join(text.split())  # one line per row: tabs and newlines become spaces


def table_rows(table: Table) -> list[list[str]]:
    """A rich table's header and rows as plain strings (markup removed)."""
    cols = table.columns
    rows = [[_cell(c.header) for c in cols]]
    cells = [list(c.cells) for c in cols]
    rows += [[_cell(cells[j][i]) for j in range(len(cols))] for i in range(table.row_count)]
    return rows


def show_table(table: Table, con: Console) -> None:
    """Every table the CLI prints: the rich table when it fits the terminal; otherwise (stdout not
    a terminal, or a terminal too narrow for it) a plain format nothing cuts or wraps mid-value:
    `# title`, a tab-separated header, one tab-separated line per row, `# caption`."""
    # the width the table wants, unconstrained (measured at the console's width it would be capped)
    wants = con.measure(table, options=con.options.update_width(100_000)).maximum
    if con.is_terminal and wants <= con.width:
        con.print(table)
        return
    out = con.file
    if table.title:
        print(f"# {_cell(table.title)}", file=out)
    for row in table_rows(table):
        print("\t".join(row), file=out)
    if table.caption:
        print(f"# {_cell(table.caption)}", file=out)
    out.flush()
