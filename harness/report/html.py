"""A self-contained HTML report: one file, inline CSS, figures as base64 PNG data URIs; no
scripts, no external assets. Every piece of text from the report is escaped.

It holds the verdict, the layer x quantity table (harness.report.text.grid), a chart of each
check's error against its tolerance, and, when the report carries them, these optional
sections:

    report.sections["h1_kernel_grad_diff"]  (12, 5, 5) or (12, 1, 5, 5) numbers: candidate
        minus reference dE/dw of the H1 kernels (isolated mode), drawn as 12 heatmaps;
    report.sections["localization"]         dict from harness.checks.localize.summarize;
    report.sections["conformance"]          list of {"choice", "paper", "candidate", "same"};
    report.sections["not_compared_with_paper"]  {layer: why};
    report.sections["training"]             {"records": [{"pass", "split", "mse",
        "error_pct", ...}, ...] (harness.train.TrainResult.records),
        "rejection_curve": {"rejected_pct": [...], "error_pct": [...]} (optional,
        as in harness.train.report.analyse), "title": str (optional)};
    report.sections["markdown_sections"]    [(title, markdown text)], rendered from a small
        Markdown subset (paragraphs, lists, tables, code, bold, italics); a section that
        repeats one drawn above from structured data (faults, spread, layers not compared,
        conformance) is left out.

A figure that cannot be drawn from the data given is replaced by a message saying why.
"""

from __future__ import annotations

import base64
import io
import math
import tempfile
from html import escape
from pathlib import Path

import matplotlib
from markdown_it import MarkdownIt

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import SymLogNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from harness.checks.compare import FAIL, NOT_RUN, PASS, Check  # noqa: E402
from harness.report.model import Report  # noqa: E402
from harness.report.text import (  # noqa: E402
    CELL_HEADER,
    CELL_LEGEND,
    MARK,
    SHORT,
    SIDE_QUANTITIES,
    cell,
    column_label,
    fmt,
    grid,
    row_verdict,
    summary_line,
    verdict_line,
)

COLOR = {PASS: "#2e7d32", FAIL: "#c62828", NOT_RUN: "#9e9e9e"}
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#212121;
max-width:1150px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:26px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:3px}
.verdict{padding:10px 14px;border-radius:4px;font-weight:600;color:#fff;font-size:15px}
.v-pass{background:#2e7d32}.v-fail{background:#c62828}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}
td.pass{background:#e3f3e4}td.fail{background:#fbdcdc;font-weight:600}
td.not_run{background:#ececec;color:#555}td.row-verdict{font-weight:700}
td.hint{color:#8a1c1c}td.nw{white-space:nowrap}
tr.differs td{background:#fff6d6}
pre{white-space:pre-wrap;background:#f7f7f7;border:1px solid #e0e0e0;padding:8px;
font-size:12px}
img{max-width:100%;border:1px solid #eee}
.meta{font-size:13px;color:#444}.small{font-size:12px;color:#555}
.warn{color:#c62828;font-weight:600}
code{background:#f2f2f2;padding:0 3px;font-size:12px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return _img_tag(buf.getvalue())


def _img_tag(data: bytes, alt: str = "figure") -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{b64}">'


def _mpl(text) -> str:
    """Report text for a matplotlib label: `$` would start mathtext, so it is escaped."""
    return str(text).replace("$", r"\$")


def _figure(title: str, draw, *args) -> str:
    """Run `draw(*args)` -> <img> html; a figure that cannot be drawn becomes a message."""
    try:
        return draw(*args)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as e:
        plt.close("all")
        return f'<p class="warn">{escape(title)}: not drawn ({escape(str(e))})</p>'


# ------------------------------------------------------------------- tables


def _table(head: list[str], rows: list[list[str]], row_classes=None) -> str:
    """`head` and cells are plain text (escaped here); a cell may be (text, css class)."""
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for i, row in enumerate(rows):
        rc = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        tds = []
        for v in row:
            text, cls = v if isinstance(v, tuple) else (v, "")
            tds.append(f'<td class="{cls}">{escape(str(text))}</td>' if cls
                       else f"<td>{escape(str(text))}</td>")
        out.append(f"<tr{rc}>" + "".join(tds) + "</tr>")
    return "\n".join(out) + "</table>"


def check_table(report: Report) -> str:
    labels, rows = grid(report)
    body = []
    for layer, quantity, cells in rows:
        row = [layer, quantity]
        for lab in labels:
            c = cells.get(lab)
            row.append((cell(c), c.status) if c is not None else "")
        v = row_verdict(cells)
        row.append((MARK[v], f"{v} row-verdict"))
        body.append(row)
    head = ["layer", "quantity"] + [f"{lab}: {CELL_HEADER}" for lab in labels] + ["verdict"]
    side = [c for c in report.sorted_checks() if c.quantity in SIDE_QUANTITIES]
    out = _table(head, body)
    if side:
        out += "<p class='small'>Integrity checks:</p>" + _table(
            ["check", "status", "detail"],
            [[f"{c.layer} {c.quantity} ({column_label(c)})", (MARK[c.status], c.status),
              c.reason or ""] for c in side])
    return out


# ------------------------------------------------------------------- figures


def _finite_pos(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _error_chart(checks: list[Check]) -> str:
    """Two panels, one bar per check: max relative error (log) with the check's rtol as a
    tick, and the fraction of tolerance used (log) with the pass line at 1."""
    checks = [c for c in checks if c.quantity not in SIDE_QUANTITIES]
    if not checks:
        raise ValueError("no checks with values")
    labels = [_mpl(f"{c.layer} {c.quantity} {column_label(c)}") for c in checks]
    h = max(2.6, 0.2 * len(checks) + 1.6)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, h), sharey=True)
    y = np.arange(len(checks))
    for ax, attr in ((a1, "max_rel"), (a2, "ratio")):
        vals = [getattr(c, attr) for c in checks]
        fin = [v for v in vals if _finite_pos(v)]
        lo = min(fin + [1e-3]) / 10 if fin else 1e-17
        hi = max(fin + [10.0]) * 10
        for i, (c, v) in enumerate(zip(checks, vals)):
            if c.status == NOT_RUN or v is None or (isinstance(v, float) and math.isnan(v)):
                ax.text(lo * 1.5, i, "not run" if c.status == NOT_RUN else "no value",
                        va="center", fontsize=7, color="#555")
                continue
            if v == 0:
                ax.text(lo * 1.5, i, "exactly 0", va="center", fontsize=7, color="#555")
                continue
            shown = hi if v == float("inf") else v
            ax.barh(i, shown, left=lo, height=0.7, color=COLOR[c.status])
            if v == float("inf"):
                ax.text(shown, i, " inf", va="center", fontsize=7, ha="right", color="w")
        if attr == "max_rel":
            rt = [(i, c.rtol) for i, c in enumerate(checks) if _finite_pos(c.rtol)]
            if rt:
                ax.scatter([r for _, r in rt], [i for i, _ in rt], marker="|", s=120,
                           color="k", zorder=3)
            ax.set_title("max relative error (log); | = the check's rtol", fontsize=9)
        else:
            ax.axvline(1.0, color="k", ls="--", lw=1)
            ax.set_title("fraction of tolerance used (log); pass when <= 1 (dashed)",
                         fontsize=9)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.grid(True, axis="x", which="major", alpha=0.3)
        ax.tick_params(axis="x", labeltop=True, labelsize=8)  # a scale at both ends
    a1.set_yticks(y)
    a1.set_yticklabels(labels, fontsize=7)
    a1.set_ylim(len(checks) - 0.5, -0.5)  # first check on top
    # the legend goes below both panels, where it covers no bar
    handles = [Patch(color=COLOR[PASS], label="PASS"), Patch(color=COLOR[FAIL], label="FAIL"),
               Line2D([], [], color="k", marker="|", ls="none", markersize=11,
                      label="rtol of the check (an entry also passes within its atol)"),
               Line2D([], [], color="k", ls="--", lw=1, label="pass line: 1x tolerance")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.3 / h, 1, 1))
    return _png(fig)


def h1_diff_array(value) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape == (12, 1, 5, 5):
        a = a[:, 0]
    if a.shape != (12, 5, 5):
        raise ValueError(f"sections['h1_kernel_grad_diff'] has shape {a.shape}, expected "
                         "(12, 5, 5) or (12, 1, 5, 5)")
    return a


def _h1_heatmaps(value, failing: set[int], against: str = "reference") -> str:
    a = h1_diff_array(value)
    finite = a[np.isfinite(a)]
    m = float(np.abs(finite).max()) if finite.size else 0.0
    m = m if m > 0 else 1.0
    # symmetric log scale: a kernel off by 1e-3 of the worst one still shows
    norm = SymLogNorm(linthresh=m * 1e-3, vmin=-m, vmax=m, base=10)
    fig, axes = plt.subplots(2, 6, figsize=(11, 4.4))
    for k, ax in enumerate(axes.flat):
        im = ax.imshow(a[k], cmap="RdBu_r", norm=norm)
        bad = k in failing
        peak = float(np.nanmax(np.abs(a[k])))
        ax.set_title(f"kernel {k}" + (" FAILS" if bad else "") + f"\nmax |d| {peak:.1e}",
                     fontsize=8, color=COLOR[FAIL] if bad else "k")
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(im, ax=list(axes.flat), shrink=0.8,
                       label=f"candidate - {against} (symmetric log)")
    bar.set_ticks([-m, -m / 100, 0.0, m / 100, m])
    bar.set_ticklabels([f"{t:.1e}" for t in (-m, -m / 100, 0.0, m / 100, m)])
    fig.suptitle("H1 dE/dw difference per kernel (5x5 maps), one shared colour scale",
                 fontsize=10)
    return _png(fig)


def _learning_curves(recs: list[dict], title: str) -> str:
    """Error % and MSE per pass for each split; the paper's final figures (after 23 passes)
    are dotted lines, so that a short run is not squeezed against pass 23."""
    from harness.train.figures import COLORS, PAPER_FINAL, PAPER_PASSES

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, q, label in ((axes[0], "error_pct", "error (%)"), (axes[1], "mse", "MSE")):
        for split in ("train", "test", "holdout"):
            rs = [r for r in recs if r.get("split") == split]
            if rs:
                ax.plot([r["pass"] for r in rs], [r[q] for r in rs], "-o", ms=4,
                        color=COLORS[split], label=split)
            if split in PAPER_FINAL:
                ax.axhline(PAPER_FINAL[split][q], color=COLORS[split], ls=":", lw=1.2,
                           label=f"paper {split}, pass {PAPER_PASSES}")
        ax.set_yscale("log")
        ax.set_xlabel("pass")
        ax.set_ylabel(label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _training_figures(t: dict) -> str:
    from harness.train import figures

    title = _mpl(t.get("title", "training"))
    html = []
    recs = t.get("records") or []
    if recs:
        html.append(_learning_curves(list(recs), title))
    with tempfile.TemporaryDirectory() as d:
        rc = t.get("rejection_curve")
        if rc:
            curve = {"this run": (np.asarray(rc["rejected_pct"], dtype=float),
                                  np.asarray(rc["error_pct"], dtype=float))}
            p = figures.rejection_curve(curve, title, Path(d) / "rejection.png")
            html.append(_img_tag(p.read_bytes(), "rejection curve"))
    plt.close("all")
    if not html:
        raise ValueError("sections['training'] has neither records nor rejection_curve")
    return "\n".join(html)


# ------------------------------------------------------------------- sections


def _localization(loc: dict) -> str:
    fwd = loc.get("first_origin_forward") or "none"
    back = loc.get("first_origin_backward") or "none"
    out = [f"<p>first origin in forward order: <b>{escape(str(fwd))}</b>; in backward order: "
           f"<b>{escape(str(back))}</b></p>"]
    origins = loc.get("origins") or []
    if origins:
        reasons = any(o.get("reason") for o in origins)
        head = ["layer", "quantity", "against", "max rel", "max abs", "worst index",
                "failing maps/rows", "likely cause"] + (["reason"] if reasons else [])
        body = []
        for o in origins:
            against = o.get("against")
            worst = o.get("worst_index")
            row = [o.get("layer"), o.get("quantity"), (SHORT.get(against, against), "nw"),
                   (fmt(o.get("max_rel")), "nw"), (fmt(o.get("max_abs")), "nw"),
                   ("" if worst is None else f"({', '.join(map(str, worst))})", "nw"),
                   _ranges(o.get("failing_groups") or []),
                   (o.get("hint"), "hint") if o.get("hint") else "-"]
            body.append(row + ([o.get("reason") or ""] if reasons else []))
        out.append(_table(head, body))
    else:
        out.append("<p>No origins: every isolated check passed.</p>")
    spread = loc.get("spread") or []
    out.append("<p>Spread end to end (not origins): "
               + escape(", ".join(map(str, spread)) or "nothing beyond the origins") + "</p>")
    return "\n".join(out)


# Markdown sections that repeat a section drawn from structured data: (title prefix, key)
_DUPLICATES = (("Faults", "localization"), ("Spread", "localization"),
               ("Layers not compared", "not_compared_with_paper"),
               ("Conformance with the paper", "conformance"))


def _shown_above(title: str, s: dict) -> bool:
    return any(title.startswith(prefix) and s.get(key) for prefix, key in _DUPLICATES)


# Markdown sections (paragraphs, lists, tables, code) rendered by markdown-it-py, with raw
# HTML off: any "<" a candidate's text holds is escaped, never markup
_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def _inline(text: str) -> str:
    """Escaped text with Markdown's `code`, **bold** and _italics_ as tags."""
    return _MD.renderInline(text)


def _markdown(md: str) -> str:
    return _MD.render(md)


def _ranges(groups) -> str:
    """[0, 1, 2, 3, 7] -> "0-3, 7": runs of consecutive indices as ranges."""
    try:
        gs = sorted(int(g) for g in groups)
    except (TypeError, ValueError):
        return ", ".join(map(str, groups))
    out, i = [], 0
    while i < len(gs):
        j = i
        while j + 1 < len(gs) and gs[j + 1] == gs[j] + 1:
            j += 1
        out.append(str(gs[i]) if j == i else f"{gs[i]}, {gs[j]}" if j == i + 1
                   else f"{gs[i]}-{gs[j]}")
        i = j + 1
    return ", ".join(out)


def _conformance(rows: list) -> str:
    body, cls = [], []
    for r in rows:
        same = r.get("same")
        body.append([r.get("choice"), r.get("paper"), r.get("candidate"),
                     "same" if same else "differs"])
        cls.append("" if same else "differs")
    return ("<p class='small'>Differences are choices, not faults.</p>"
            + _table(["choice", "paper", "candidate", "match"], body, cls))


def to_html(report: Report) -> str:
    s = report.sections
    cls = "v-pass" if report.verdict == PASS else "v-fail"
    parts = [f"<h1>verify: {escape(report.candidate)}</h1>",
             f'<div class="verdict {cls}">{escape(summary_line(report))}</div>',
             f"<p class='meta'>data: {escape(str(report.data_source))}, {report.samples} "
             f"pattern{'s' if report.samples != 1 else ''}; dtype {escape(report.dtype)}; "
             f"preset {escape(report.preset)}; seed {report.seed}</p>"]
    if s.get("load_error"):
        parts.append(f"<p class='warn'>candidate not loaded: {escape(str(s['load_error']))}</p>")
    parts += ["<h2>Checks by layer and quantity</h2>",
              f"<p class='small'>{escape(CELL_LEGEND[0].upper() + CELL_LEGEND[1:])}.</p>",
              check_table(report)]
    parts += ["<h2>Error against tolerance, per check</h2>",
              _figure("error chart", _error_chart, report.sorted_checks())]
    if s.get("h1_kernel_grad_diff") is not None:
        # kernel indices only where a check compared the whole (12, 1, 5, 5) or (12, 5, 5)
        # gradient (a chain check compares a few random directions, not kernels)
        failing = {g for c in report.failed if c.layer == "H1" and c.quantity == "weight_grad"
                   and tuple(c.shape) in ((12, 1, 5, 5), (12, 5, 5))
                   for g in c.failing_groups}
        parts += ["<h2>H1 kernel-gradient difference</h2>",
                  _figure("H1 heatmaps", _h1_heatmaps, s["h1_kernel_grad_diff"], failing,
                          s.get("h1_kernel_grad_diff_against", "reference"))]
    if isinstance(s.get("localization"), dict):
        parts += ["<h2>Faults: where each one starts</h2>", _localization(s["localization"])]
    if s.get("not_compared_with_paper"):
        parts += ["<h2>Layers not compared with the paper's</h2>",
                  _table(["layer", "why"], [[k, v] for k, v in
                                            s["not_compared_with_paper"].items()])]
    if s.get("conformance"):
        parts += ["<h2>Conformance with the paper</h2>", _conformance(s["conformance"])]
    if isinstance(s.get("training"), dict):
        parts += ["<h2>Training</h2>", _figure("training", _training_figures, s["training"])]
    failed = [c for c in report.sorted_checks() if c.status != PASS]
    lines = [ln for c in report.sorted_checks() for ln in verdict_line(c)]
    parts += ["<h2>Verdict lines</h2>"]
    if failed:
        parts.append("<pre>" + escape("\n".join(
            ln for c in failed for ln in verdict_line(c))) + "</pre>")
    parts.append("<details><summary>every check</summary><pre>" + escape("\n".join(lines))
                 + "</pre></details>")
    for title, body in s.get("markdown_sections", []):
        if _shown_above(str(title), s):
            continue
        parts += [f"<h2>{_inline(str(title))}</h2>", _markdown(str(body))]
    if report.notes:
        parts += ["<h2>Notes</h2>", "<ul>" + "".join(
            f"<li>{escape(str(n))}</li>" for n in report.notes) + "</ul>"]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>verify: {escape(report.candidate)} ({escape(report.verdict)})</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
