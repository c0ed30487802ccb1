"""Plain-text pieces shared by the console and Markdown reporters: one verdict line per
check (with the smallest tolerance that would have passed), and the layer x quantity grid."""

from __future__ import annotations

from harness.checks.compare import FAIL, NOT_RUN, PASS, Check
from harness.report.model import Report

MARK = {PASS: "PASS", FAIL: "FAIL", NOT_RUN: "NOT RUN"}


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "-"
        if v in (float("inf"), float("-inf")):
            return "inf"
        return f"{v:.1e}"
    return str(v)


SHORT = {"reference": "ref", "candidate": "cand", "twin": "twin", "finite_diff": "FD",
         "self_fd": "own FD"}
SIDE_QUANTITIES = ("params_unchanged", "runs", "load")
# a grid cell is "PASS 2.7e-05 (5e-03)": verdict, max rel, error as a multiple of its tolerance
CELL_HEADER = "max rel (x tol)"
CELL_LEGEND = ("each cell: verdict, the largest relative difference, and in parentheses the "
               "largest error as a multiple of its tolerance (1 or less passes)")


def column_label(c: Check) -> str:
    mode = f" ({c.mode})" if c.mode and c.subject == "candidate" else ""
    return f"{SHORT.get(c.subject, c.subject)} vs {SHORT.get(c.against, c.against)}{mode}"


def grid(report: Report):
    """(column labels, rows); a row is (layer, quantity, {label: Check}). Integrity checks
    (parameters unchanged, a call that raised or hung) are listed as lines, not cells."""
    labels, rows, index = [], [], {}
    for c in report.sorted_checks():
        if c.quantity in SIDE_QUANTITIES:
            continue
        lab = column_label(c)
        if lab not in labels:
            labels.append(lab)
        key = (c.layer, c.quantity)
        if key not in index:
            index[key] = {}
            rows.append((c.layer, c.quantity, index[key]))
        index[key][lab] = c
    return labels, rows


def row_verdict(cells) -> str:
    """The verdict of a grid row (its Checks, or a {label: Check} dict): FAIL if any check
    fails, else PASS if any passes, else NOT_RUN."""
    statuses = {c.status for c in (cells.values() if isinstance(cells, dict) else cells)}
    return FAIL if FAIL in statuses else (PASS if PASS in statuses else NOT_RUN)


def cell(c: Check | None) -> str:
    if c is None:
        return ""
    if c.status == NOT_RUN:
        return "NOT RUN"
    if c.reason and c.n == 0:  # no values compared: the reason, short (the detail is below)
        short = "wrong shape" if c.reason.startswith("shape ") else c.reason
        return f"{MARK[c.status]} ({short if len(short) <= 24 else short[:23] + '…'})"
    return f"{MARK[c.status]} {fmt(c.max_rel)} ({c.ratio:.0e})"


def verdict_line(c: Check) -> list[str]:
    """One verdict line, then indented detail for failures (Polygraphy-style)."""
    head = f"{MARK[c.status]:<7} {c.layer:<4} {c.quantity:<12} {column_label(c)}"
    if c.status == NOT_RUN:
        return [f"{head}: {c.reason}"]
    if c.quantity in SIDE_QUANTITIES:
        return [head + (f": {c.reason}" if c.reason else "")]
    if c.reason and c.n == 0 and c.max_abs != float("inf"):
        return [f"{head}: {c.reason}"]
    used = f"uses {fmt(c.ratio)} of tolerance (atol {fmt(c.atol)}, rtol {fmt(c.rtol)})"
    lines = [f"{head}  max abs {fmt(c.max_abs)}  max rel {fmt(c.max_rel)}  {used}"]
    if c.status == FAIL:
        pct = 100.0 * c.n_fail / max(c.n, 1)
        share = f"{pct:.1f}%" if pct >= 0.1 or pct == 0 else f"{pct:.2g}%"  # 1 of 2400: 0.042%
        lines.append(f"        shape {tuple(c.shape)}; {c.n_fail} of {c.n} entries outside "
                     f"tolerance ({share})" + (f"; {c.reason}" if c.reason else ""))
        if c.worst_index is not None:
            lines.append(f"        worst at {tuple(c.worst_index)}: obtained "
                         f"{c.worst_obtained:.6e}, expected {c.worst_expected:.6e}")
        if c.max_abs != float("inf"):
            lines.append(f"        would pass at rtol >= {fmt(c.needed_rtol)} (atol "
                         f"{fmt(c.atol)}) or at atol >= {fmt(c.needed_atol)} alone")
        if c.hint:
            lines.append(f"        likely cause: {c.hint}")
        if c.failing_groups:
            g = ", ".join(str(i) for i in c.failing_groups[:12])
            more = "" if len(c.failing_groups) <= 12 else f" (+{len(c.failing_groups) - 12})"
            lines.append(f"        failing maps/rows: {g}{more}")
    else:
        lines[0] += f"; would pass at rtol >= {fmt(c.needed_rtol)}"
    return lines


def summary_line(report: Report) -> str:
    n = report.counts()
    word = report.verdict.upper() if n[PASS] or n[FAIL] else "NOTHING VERIFIED"
    s = (f"{word}: {n[PASS]} passed, {n[FAIL]} failed, "
         f"{n[NOT_RUN]} not run ({report.candidate}, {report.dtype}, {report.samples} "
         f"pattern{'s' if report.samples != 1 else ''} from {report.data_source})")
    if report.failed:
        names = sorted({f"{c.layer} {c.quantity}" for c in report.failed},
                       key=lambda t: t)
        s += "; failing: " + ", ".join(names)
    return s


def verdict_blocks(checks):
    """(lines, status) per check, in order; NOT RUN checks that share one reason (all that
    a failed call would have fed) become one line listing them, at the first one's place."""
    by_reason: dict[str, list] = {}
    for c in checks:
        if c.status == NOT_RUN:
            by_reason.setdefault(c.reason, []).append(c)
    for c in checks:
        group = by_reason.get(c.reason, []) if c.status == NOT_RUN else []
        if len(group) < 2:
            yield verdict_line(c), c.status
        elif group[0] is c:
            by_label: dict[str, list[str]] = {}
            for g in group:
                by_label.setdefault(column_label(g), []).append(f"{g.layer} {g.quantity}")
            names = "; ".join(f"{lab}: {', '.join(v)}" for lab, v in by_label.items())
            yield [f"NOT RUN {len(group)} checks, {names}", f"        {c.reason}"], NOT_RUN
