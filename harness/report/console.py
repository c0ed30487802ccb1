"""The terminal report: a rich table (one row per layer x quantity) and verdict lines."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.checks.compare import FAIL, NOT_RUN, PASS
from harness.report.model import Report
from harness.report.text import (
    CELL_HEADER,
    CELL_LEGEND,
    SIDE_QUANTITIES,
    cell,
    grid,
    summary_line,
    verdict_line,
)

STYLE = {PASS: "green", FAIL: "bold red", NOT_RUN: "yellow"}


def render(report: Report, console: Console | None = None, verbose: bool = False) -> None:
    console = console or Console()
    labels, rows = grid(report)
    table = Table(title=f"verify: {report.candidate} ({report.dtype}, preset {report.preset})",
                  show_lines=False)
    table.add_column("layer")
    table.add_column("quantity")
    for lab in labels:
        table.add_column(f"{lab}\n{CELL_HEADER}", justify="right")
    table.add_column("verdict")
    for layer, quantity, cells in rows:
        statuses = {c.status for c in cells.values()}
        v = FAIL if FAIL in statuses else (PASS if PASS in statuses else NOT_RUN)
        table.add_row(layer, quantity,
                      *[_styled(cells.get(lab)) for lab in labels],
                      f"[{STYLE[v]}]{v.upper().replace('_', ' ')}[/]")
    console.print(table)
    console.print(CELL_LEGEND, style="dim", highlight=False)
    for section in report.sections.get("console_sections", []):
        console.print(section)
    side = [c for c in report.checks if c.quantity in SIDE_QUANTITIES]
    shown = report.checks if verbose else [
        c for c in report.checks if c.status != PASS or c in side]
    if shown:
        console.print("[bold]checks[/]" if verbose else "[bold]integrity, failed and not-run "
                      "checks[/] (-v for all)")
    for c in sorted(shown, key=lambda c: report.sorted_checks().index(c)):
        for i, line in enumerate(verdict_line(c)):
            console.print(f"[{STYLE[c.status]}]{line}[/]" if i == 0 else line,
                          highlight=False, markup=False if i else True)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"[{STYLE[report.verdict]}]{summary_line(report)}[/]", highlight=False)


def _styled(c) -> str:
    if c is None:
        return ""
    return f"[{STYLE[c.status]}]{cell(c)}[/]"
