"""`verify selftest`: run the fault catalog and the false-alarm trials, print, gate.

    verify selftest [--json PATH] [--markdown PATH] [--trials N] [--quick] [--no-progress]

Exit 0 only when detection = localization = 100%, the control passes, no false alarm
occurred and every required implementation ran; 1 otherwise.
"""

from __future__ import annotations

import json
import math

QUICK_TRIALS = 4
QUICK_FAULTS = ("h1_wgrad_not_dilated", "h2_dx_wrong_map_index", "h3_wgrad_transposed",
                "out_update_before_dx", "loss_grad_sign_flipped")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "selftest", help="prove the harness catches injected faults and stays quiet on "
        "correct code",
        description="Run every injected fault (harness/selftest/faults.py) through the candidate "
        "checks, then the clean implementations over many seeds and hard inputs. Exit 0 only "
        "if detection and localization are 100% and no false alarm occurred.")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the results as Markdown")
    p.add_argument("--trials", type=int, default=50,
                   help="false-alarm trials (seeds x inputs), default 50")
    p.add_argument("--quick", action="store_true",
                   help=f"{len(QUICK_FAULTS)} faults and {QUICK_TRIALS} trials (for tests); "
                   "NOT the gate")
    p.add_argument("--jobs", type=int, default=-1, help="parallel workers (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf (shape/NaN)"
    return f"{v:.3g}"


def _markdown(res) -> str:
    lines = ["# verify selftest", "",
             "| fault | layer | quantity | detected | localized | margin | origins |",
             "|---|---|---|---|---|---|---|"]
    for f in res.faults:
        lines.append(f"| {f.name} | {f.layer} | {f.quantity} | {f.detected} | {f.localized} "
                     f"| {_fmt(f.margin)} | {', '.join(f.origins)} |")
    lines += ["", f"- detection rate: {res.detection_rate:.0%} of {len(res.faults)}",
              f"- localization rate: {res.localization_rate:.0%}",
              f"- smallest fault margin (error / tolerance): {_fmt(res.fault_margin)}",
              f"- false alarms: {res.false_alarms} over {res.trials} trials "
              f"{res.trial_kinds}",
              f"- largest clean error / tolerance: {_fmt(res.clean_margin)}", "",
              "| implementation | dtype | trials | checks | failures | worst ratio | where |",
              "|---|---|---|---|---|---|---|"]
    for s in res.clean:
        if s.not_run:
            lines.append(f"| {s.impl} | {s.dtype} | NOT RUN | | | | {s.not_run} |")
        else:
            lines.append(f"| {s.impl} | {s.dtype} | {s.trials} | {_checks_text(s)} | {s.failures} "
                         f"| {_fmt(s.worst_ratio)} | {s.worst_where} |")
    lines += [""] + [f"- {n}" for n in res.notes]
    for s in res.clean:
        lines += [f"- false alarm, {s.impl} {s.dtype}: {x}" for x in s.failed]
    return "\n".join(lines) + "\n"


def run(args, console) -> int:
    from rich.table import Table

    from harness.cli import UsageError, progress_bar
    from harness.selftest.faults import CATALOG, by_name
    from harness.selftest.runner import run_selftest

    if args.trials < 1:
        raise UsageError(f"--trials must be at least 1, got {args.trials}")
    faults = [by_name(n) for n in QUICK_FAULTS] if args.quick else list(CATALOG)
    trials = min(args.trials, QUICK_TRIALS) if args.quick else args.trials
    show = not args.no_progress and console.is_terminal
    ctx, update = progress_bar(console, show, "selftest")
    with ctx:
        res = run_selftest(trials=trials, faults=faults, n_jobs=args.jobs,
                           progress=(lambda d, t, w: update(d, t)) if update else None)

    t = Table(title=f"Injected faults ({len(res.faults)})")
    for col in ("fault", "breaks", "detected", "localized", "margin", "caught by",
                "origins found"):
        t.add_column(col)
    for f in res.faults:
        t.add_row(f.name, f"{f.layer} {f.quantity}", "yes" if f.detected else "[red]NO[/]",
                  "yes" if f.localized else "[red]NO[/]", _fmt(f.margin), f.margin_check,
                  ", ".join(f.origins) or "none")
    console.print(t)
    for c in res.controls:
        state = "passes" if c.n_failed == 0 else f"[red]FAILS {c.n_failed} checks[/]"
        console.print(f"control {c.name} ({c.description}): {state}", highlight=False)
    console.print(f"detection rate: {res.detection_rate:.0%} "
                  f"({sum(f.detected for f in res.faults)}/{len(res.faults)}); "
                  f"localization rate: {res.localization_rate:.0%} "
                  f"({sum(f.localized for f in res.faults)}/{len(res.faults)})",
                  highlight=False)
    console.print(f"fault margin: the least sensitive check caught its fault at "
                  f"{_fmt(res.fault_margin)} x its tolerance", highlight=False)

    c = Table(title=f"False alarms: {res.trials} trials {res.trial_kinds}, "
                    f"data {res.data_source}")
    for col in ("implementation", "dtype", "trials", "checks", "false alarms",
                "largest clean error / tol", "where"):
        c.add_column(col)
    for s in res.clean:
        if s.not_run:
            c.add_row(s.impl, s.dtype, "[yellow]NOT RUN[/]", "", "", "", s.not_run)
        else:
            c.add_row(s.impl, s.dtype, str(s.trials), _checks_text(s),
                      str(s.failures) if not s.failures else f"[red]{s.failures}[/]",
                      _fmt(s.worst_ratio), s.worst_where)
    console.print(c)
    for s in res.clean:
        for line in s.failed[:10]:
            console.print(f"  false alarm ({s.impl} {s.dtype}): {line}", highlight=False,
                          markup=False)
        if len(s.failed) > 10:
            console.print(f"  ... {len(s.failed) - 10} more ({s.impl} {s.dtype})")
    console.print(f"false alarms: {res.false_alarms}; largest clean error: "
                  f"{_fmt(res.clean_margin)} x tolerance (<= 1 passes)", highlight=False)
    for n in res.notes + [f"NOT RUN: {x}" for x in res.not_run]:
        console.print(f"note: {n}", highlight=False)
    console.print(f"selftest took {res.seconds:.0f} s", highlight=False)

    from harness.report import files as report_files

    for path, text in ((args.json, lambda: json.dumps(res.to_dict(), indent=1)),
                       (args.markdown, lambda: _markdown(res))):
        if path:
            try:
                report_files.write_atomic(path, text())
            except report_files.ReportWriteError as e:
                raise UsageError(str(e)) from None
            console.print(f"wrote {path}", highlight=False, markup=False)
    ok = res.passed
    if ok and res.incomplete:  # a subset passed: say so, never as the gate's PASS
        console.print("selftest: [yellow]PASS on a subset, not the gate[/]: "
                      + "; ".join(res.incomplete), highlight=False)
    else:
        console.print("selftest: " + ("[green]PASS[/]" if ok else "[red]FAIL[/]"))
    return 0 if ok else 1


def _checks_text(s) -> str:
    """Checks that ran; those that could not run are counted apart, never as passes."""
    return f"{s.checks} (+{s.not_run_checks} not run)" if s.not_run_checks else str(s.checks)
