"""JSON and Markdown reports, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.checks.tolerance import policy_table
from harness.report.model import Report
from harness.report.text import (
    CELL_HEADER,
    CELL_LEGEND,
    MARK,
    cell,
    grid,
    row_verdict,
    summary_line,
    verdict_line,
)
from reference.atomic import atomic_write


class ReportWriteError(OSError):
    """A report could not be written; the message names the path and the reason."""


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ReportWriteError(f"{path}: {parent} is a file, not a folder")
            break
    try:
        atomic_write(path, lambda fh: fh.write(text))
    except OSError as e:
        raise ReportWriteError(f"{path}: cannot write here ({e.strerror or e})") from None
    return path


def to_json(report: Report) -> str:
    d = report.to_dict()
    d.pop("console_sections", None)
    d.pop("markdown_sections", None)
    d["tolerance_policy"] = policy_table()
    return json.dumps(_finite(d), indent=2, default=_default, allow_nan=False)


def _finite(o):
    """Strict JSON: inf becomes "inf"/"-inf", NaN becomes null."""
    if isinstance(o, float) and o != o:
        return None
    if isinstance(o, float) and o in (float("inf"), float("-inf")):
        return "inf" if o > 0 else "-inf"
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    return str(o)


def _md_cell(text) -> str:
    """Text for one Markdown table cell: a `|` would end the cell, a newline the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    labels, rows = grid(report)
    out = [f"# verify: {report.candidate}", "",
           f"**{summary_line(report)}**", "",
           (f"- data: {report.data_source}, {report.samples} "
            f"pattern{'s' if report.samples != 1 else ''}"),
           f"- dtype: {report.dtype}; preset: {report.preset}; seed: {report.seed}", ""]
    out.append("| layer | quantity | "
               + "".join(f"{_md_cell(lab)}: {CELL_HEADER} | " for lab in labels)
               + "verdict |")
    out.append("|---|---|" + "---|" * len(labels) + "---|")
    for layer, quantity, cells in rows:
        out.append(f"| {_md_cell(layer)} | {_md_cell(quantity)} | "
                   + "".join(f"{_md_cell(cell(cells.get(lab)))} | " for lab in labels)
                   + f"{MARK[row_verdict(cells)]} |")
    out += ["", f"_{CELL_LEGEND}._", ""]
    for title, body in report.sections.get("markdown_sections", []):
        out += [f"## {title}", "", body, ""]
    out += ["## Checks", "", "```"]
    for c in report.sorted_checks():
        out += verdict_line(c)
    out += ["```", ""]
    if report.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    out += ["## Tolerance policy", "",
            "An entry passes when |obtained - expected| <= atol + rtol |expected|, with "
            "atol = max(floor * max|expected|, tiny). NaN or Inf never passes.", "",
            "| against | dtype | rtol | floor | tiny | why |", "|---|---|---|---|---|---|"]
    for t in policy_table():
        out.append(f"| {t['against']} | {t['dtype']} | {t['rtol']:g} | {t['floor']:g} | "
                   f"{t['tiny']:g} | {t['why']} |")
    return "\n".join(out) + "\n"
