"""`verify gate`: the CI regression gate (harness/gate/items.py says what it checks and how)."""

from __future__ import annotations

import difflib

from harness.cli import UsageError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "gate", help="CI regression gate: reference checks, self-test, short training run, "
        "each against reports/gate/baseline.json",
        description="Run the reference checks, the fault self-test (with a few false-alarm "
        "trials; `verify selftest` runs all 50) and one pass of SGD over 1,000 digits, and "
        "compare each figure with the committed baseline. Exit 1 naming what moved.")
    p.add_argument("--data", metavar="DIR", help="USPS folder (as for verify)")
    p.add_argument("--baseline", metavar="PATH", help="baseline file (default: "
                   "reports/gate/baseline.json)")
    p.add_argument("--update-baseline", action="store_true",
                   help="rewrite the baseline from this run and show the diff")
    p.add_argument("--junit", metavar="PATH", help="JUnit XML: one case per check and item")
    p.add_argument("--json", metavar="PATH", help="write the gate's results as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args, console) -> int:
    import json
    from pathlib import Path

    from harness import data as D
    from harness.gate import items as gate
    from harness.report.files import ReportWriteError, write_atomic

    try:
        usps = D.load_usps(args.data)
    except D.DataError as e:
        raise UsageError(f"the gate needs the real digits: {e}") from None
    path = Path(args.baseline) if args.baseline else gate.BASELINE
    try:
        base = gate.load_baseline(path)
    except ValueError as e:
        raise UsageError(str(e)) from None

    console.print("gate 1/3: reference against twin and finite differences", highlight=False)
    items, checks = gate.reference_items(usps)
    console.print("gate 2/3: fault self-test", highlight=False)
    more, selftest = gate.selftest_items()
    items += more
    console.print("gate 3/3: one pass of SGD over 1,000 digits", highlight=False)
    more, training = gate.training_items(usps)
    items += more

    if args.update_baseline:
        old = path.read_text() if path.exists() else ""
        new = gate.baseline_text(items, json.loads(old) if old else None)
        try:
            write_atomic(path, new)
        except ReportWriteError as e:
            raise UsageError(str(e)) from None
        diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(),
                                         "baseline (old)", "baseline (new)", lineterm=""))
        console.print("\n".join(diff) or "baseline unchanged", highlight=False, markup=False)
        console.print(f"wrote {path}", highlight=False, markup=False)
        return 0

    for it in items:
        it.baseline = base.get(it.name)
        it.judge()
        mark = "PASS" if it.ok else "FAIL"
        console.print(f"{mark:<5} {it.message}", highlight=False, markup=False)
    failed = [it for it in items if not it.ok]
    if args.junit or args.json:
        from harness.report.model import Report

        report = Report("reference", usps.source, 4, "float64", 0, "paper", checks=checks)
        extra = [(it.name, it.ok, it.message) for it in items]
        outputs = []
        if args.junit:
            from harness.report.junit import to_junit

            outputs.append((args.junit, to_junit(report, extra_cases=extra)))
        if args.json:
            body = {"verdict": "fail" if failed else "pass",
                    "items": [vars(it) for it in items], "selftest": selftest,
                    "training": training}
            outputs.append((args.json, json.dumps(body, indent=2, default=str)))
        for where, text in outputs:
            try:
                write_atomic(where, text)
            except ReportWriteError as e:
                raise UsageError(str(e)) from None
    if failed:
        console.print("gate FAILED: " + "; ".join(it.message for it in failed),
                      highlight=False, markup=False)
        return 1
    console.print(f"gate passed: {len(items)} items within their tolerances", highlight=False)
    return 0
