"""The terminal report: a rich table (one row per layer x quantity) and verdict lines."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.checks.compare import FAIL, NOT_RUN, PASS
from harness.report.model import Report
from harness.report.text import (
    CELL_HEADER,
    CELL_LEGEND,
    SIDE_QUANTITIES,
    cell,
    grid,
    summary_line,
    verdict_blocks,
)

STYLE = {PASS: "green", FAIL: "bold red", NOT_RUN: "yellow"}


def render(report: Report, console: Console | None = None, verbose: bool = False) -> None:
    """Print the report. Text that comes from a candidate, a path or an exception is never
    read as rich markup: a message holding "[/x]" is printed as it is."""
    console = console or Console()
    labels, rows = grid(report)
    table = Table(title=Text(f"verify: {report.candidate} ({report.dtype}, preset "
                             f"{report.preset})"), show_lines=False)
    table.add_column("layer")
    table.add_column("quantity")
    for lab in labels:
        table.add_column(f"{lab}\n{CELL_HEADER}", justify="right")
    table.add_column("verdict")
    for layer, quantity, cells in rows:
        statuses = {c.status for c in cells.values()}
        v = FAIL if FAIL in statuses else (PASS if PASS in statuses else NOT_RUN)
        table.add_row(Text(layer), Text(quantity),
                      *[_styled(cells.get(lab)) for lab in labels],
                      Text(v.upper().replace("_", " "), style=STYLE[v]))
    console.print(table)
    console.print(CELL_LEGEND, style="dim", highlight=False, markup=False)
    for section in report.sections.get("console_sections", []):
        if isinstance(section, str):
            console.print(section, highlight=False, markup=False)
        else:
            console.print(section)
    order = {id(c): k for k, c in enumerate(report.sorted_checks())}
    shown = sorted((c for c in report.checks if verbose or c.status != PASS
                    or c.quantity in SIDE_QUANTITIES), key=lambda c: order[id(c)])
    if shown:
        console.print("[bold]checks[/]" if verbose else "[bold]integrity, failed and not-run "
                      "checks[/] (-v for all)")
    for lines, status in verdict_blocks(shown):
        for i, line in enumerate(lines):
            console.print(line, style=STYLE[status] if i == 0 else None, highlight=False,
                          markup=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    console.print(summary_line(report), style=STYLE[report.verdict], highlight=False,
                  markup=False)


def _styled(c) -> Text | str:
    if c is None:
        return ""
    return Text(cell(c), style=STYLE[c.status])
