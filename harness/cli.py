"""`verify`: is my backprop right, and if not, where exactly?

    verify [--data DIR] [--candidate NAME | path/to/file.py:attr | module:attr] [...]
    verify selftest | train | gate  [...]          (see `verify CMD --help`)

Exit codes: 0 every check passed, 1 some check failed, 2 bad usage or bad input.
This is the only module of the harness, with the reporters, that prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input or usage: printed as one message, exit code 2."""


def seed_arg(text: str) -> int:
    """--seed: a whole number >= 0 (numpy's generators take no negative seed)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {v}")
    return v


def seconds_arg(text: str) -> float:
    """--timeout: finite seconds > 0 (0 would call every candidate hung at once)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}") from None
    if not (0 < v < 1e6):
        raise argparse.ArgumentTypeError(f"expected seconds > 0 and below 1e6, got {text}")
    return v


def add_common_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="PATH", help="write the report as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the report as Markdown")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML, one case per check")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="a verdict line per check")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="verify",
        description="Check a LeCun-1989 network's forward and backward, layer by layer, "
        "against the NumPy reference, its PyTorch twin and finite differences.",
        epilog="--candidate with a file path or module IMPORTS AND RUNS that code. "
        "Exit codes: 0 pass, 1 a check failed, 2 bad usage or input.",
    )
    p.add_argument("--data", metavar="DIR",
                   help="USPS folder (parquet layout or zip.train.gz); default: $USPS_DATA, "
                   "then ./data/usps and ../shared/data/usps, then the hub; if none is found "
                   "a deterministic synthetic batch is used and the report says so")
    p.add_argument("--candidate", default="reference", metavar="NAME|FILE.py:ATTR|MOD:ATTR",
                   help="what to check: a built-in (reference, karpathy, notebook, "
                   "notebook-fixed) or your own file/module (this runs your code); "
                   "default: reference (the NumPy reference against its twin)")
    p.add_argument("--preset", default="paper", choices=["paper", "karpathy"],
                   help="the spec the reference is built from (default: paper)")
    p.add_argument("--params", metavar="FILE.npz", help="parameters to use instead of a "
                   "seeded initialisation (.npz from reference.params.save_params)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the shared parameters "
                   "(a whole number >= 0; default 0)")
    p.add_argument("--samples", type=int, default=4,
                   help="how many training digits to check on, 1 to 1000 (default 4: the "
                   "first of classes 0, 1, 2, 3)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="dtype of the implementations (finite differences are float64); a "
                   "candidate needs with_dtype() for float32")
    p.add_argument("--timeout", type=seconds_arg, default=120.0,
                   help="seconds a candidate's call may take before it is reported as hung "
                   "(default 120)")
    add_common_report_args(p)
    from harness.gate import cli as gate_cli
    from harness.selftest import cli as selftest_cli
    from harness.train import cli as train_cli

    sub = p.add_subparsers(dest="command")
    for mod in (selftest_cli, train_cli, gate_cli):
        mod.add_parser(sub)
    sub.metavar = "{" + ",".join(sub.choices) + "}"
    return p


def pick_digits(data, n: int):
    """The first training digit of classes 0, 1, 2, ... cycling, n of them."""
    idx, seen = [], {}
    for cls in [c % 10 for c in range(n)]:
        start = seen.get(cls, -1) + 1
        hits = np.flatnonzero(data.train_y[start:] == cls)
        if hits.size == 0:
            most = 10 * int(np.bincount(data.train_y, minlength=10).min())
            raise UsageError(f"--samples {n} asks for more digits of class {cls} than the "
                             f"training set has; at most {most} can be taken one class at "
                             "a time")
        seen[cls] = start + int(hits[0])
        idx.append(seen[cls])
    return data.train_x[idx], data.train_y[idx], idx


def load_batch(args, console):
    from harness import data as D

    if not 1 <= args.samples <= 1000:
        raise UsageError(f"--samples must be between 1 and 1000, got {args.samples}")
    try:
        usps = D.load_usps(args.data)
    except D.DataError as e:
        if args.data or os.environ.get("USPS_DATA", "").strip():
            # a place the user named is broken: that is bad input, never a silent fallback
            raise UsageError(str(e)) from None
        x, y = D.synthetic_batch(args.samples, seed=args.seed)
        note = ("no USPS data found (see `verify --help` for where it looks): using a "
                f"deterministic synthetic batch of {args.samples} "
                f"pattern{'s' if args.samples != 1 else ''}")
        console.print(f"note: {note}", highlight=False, markup=False)
        return x, y, "synthetic", note
    x, y, idx = pick_digits(usps, args.samples)
    return x, y, f"{usps.source} (train indices {idx})", None


def load_params_arg(args, spec):
    from reference.params import init_params, load_params

    if args.params:
        try:
            return load_params(args.params, spec)
        except ValueError as e:
            raise UsageError(str(e)) from None
    return init_params(spec, args.seed)


def progress_bar(console, enabled: bool, label: str):
    """A (context manager, update(done, total)) pair; a no-op when disabled."""
    import contextlib

    if not enabled:
        return contextlib.nullcontext(), None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    prog = Progress(TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeRemainingColumn(), console=console, transient=True)
    task = prog.add_task(label, total=None)

    def update(done, total):
        prog.update(task, completed=done, total=total)

    return prog, update


def run_verify(args, console) -> int:
    from harness.report.model import Report
    from reference.spec import preset

    spec = preset(args.preset)
    x, y, source, note = load_batch(args, console)
    # a candidate with a declared spec gets a seeded set from that spec unless --params
    params = load_params_arg(args, spec) if args.candidate == "reference" or args.params \
        else None
    report = Report(candidate=args.candidate, data_source=source, samples=len(x),
                    dtype=args.dtype, seed=args.seed, preset=args.preset)
    if note:
        report.notes.append(note)
    show = not args.no_progress and console.is_terminal
    t0 = time.perf_counter()
    if args.candidate == "reference":
        from harness.checks.verify_reference import run_reference_checks

        ctx, update = progress_bar(console, show, "finite differences")
        with ctx:
            report.checks = run_reference_checks(spec, params, x, y, dtype=args.dtype,
                                                 progress=update)
        from harness.checks.sdlm import sdlm_checks

        report.checks += sdlm_checks(spec, params, x, y)
    else:
        from harness.checks.verify_candidate import run_candidate_checks

        ctx, update = progress_bar(console, show, f"checking {args.candidate}")
        with ctx:
            run_candidate_checks(report, args.candidate, spec, params, x, y,
                                 timeout=args.timeout, progress=update, seed=args.seed,
                                 dtype=args.dtype)
    report.notes.append(f"checks took {time.perf_counter() - t0:.1f} s")
    code = exit_code(report)
    report.sections["exit_code"] = code  # in the JSON, so a reader tells bad input from a fault
    emit(report, args, console)
    if code == EXIT_FAIL and not any(c.ok for c in report.checks):
        console.print("no check could run: nothing was verified", highlight=False)
    return code


def exit_code(report) -> int:
    """2 when the candidate could not be loaded (bad input), 1 when a check failed or none
    passed (NOT RUN is never a pass), else 0."""
    if any(c.quantity == "load" and not c.ok for c in report.checks):
        return EXIT_USAGE
    if not any(c.ok for c in report.checks):
        return EXIT_FAIL
    return EXIT_PASS if report.verdict == "pass" else EXIT_FAIL


def check_output_paths(args) -> None:
    """Refuse, before any work, an empty report path or two reports sent to one file."""
    given = [(f"--{flag}", getattr(args, flag, None)) for flag in ("json", "markdown", "html",
                                                                  "junit")]
    given = [(flag, path) for flag, path in given if path is not None]
    for flag, path in given:
        if not path.strip():
            raise UsageError(f"{flag}: an empty path; give a file name")
    seen: dict[str, str] = {}
    for flag, path in given:
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{seen[real]} and {flag} both write {path}; give each report "
                             "its own file")
        seen[real] = flag


def emit(report, args, console) -> None:
    """Render to the console and write every requested file; a file that cannot be written
    is named and the rest are still written."""
    from harness.report import console as report_console
    from harness.report import files as report_files
    from harness.report import html as report_html
    from harness.report import junit as report_junit

    report_console.render(report, console, verbose=args.verbose)
    writers = [(args.json, report_files.to_json), (args.markdown, report_files.to_markdown),
               (args.html, report_html.to_html), (args.junit, report_junit.to_junit)]
    errors = []
    for path, render in writers:
        if not path:
            continue
        try:
            report_files.write_atomic(path, render(report))
            console.print(f"wrote {path}", highlight=False, markup=False)
        except report_files.ReportWriteError as e:
            errors.append(str(e))
    if errors:
        raise UsageError("could not write: " + "; ".join(errors)
                         + " (the console report above is complete)")


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.markup import escape

    # a report read in a CI log or a file is wider than a default 80-column pipe
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 120
    console = Console() if sys.stdout.isatty() else Console(width=width)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_output_paths(args)
        if args.command is None:
            return run_verify(args, console)
        return args.run(args, console)
    except UsageError as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.print("interrupted; files already written are complete", highlight=False)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: no bare traceback
        if os.environ.get("VERIFY_DEBUG"):
            raise
        console.print(f"[bold red]internal error:[/] {type(e).__name__}: {escape(str(e))}\n"
                      "This is a bug in the harness, not in your network. Set VERIFY_DEBUG=1 "
                      "to see the traceback, and please report it.", highlight=False)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
