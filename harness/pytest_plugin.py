"""A pytest plugin: assert in your own test suite that your candidate passes `verify`.

    def test_my_net_backprop(verify_candidate):
        report = verify_candidate("mynet.py:build", samples=1)   # or a candidate object
        assert_verified(report)                                  # fails with verdict lines

`verify_candidate(candidate, samples=1, *, preset="paper", seed=0, data=None, timeout=...)`
runs harness.checks.verify_candidate.run_candidate_checks and returns the Report. `candidate` is
anything harness.checks.verify_candidate accepts: a built-in name ("reference", ...), a
"path/file.py:attr" or "module:attr" reference (this imports and runs that code), or an
object that follows candidates/protocol.py.

Load it with `pytest -p harness.pytest_plugin` (it declares no pytest11 entry point, so it
never loads into a test run that did not ask for it). Options: --verify-data DIR (USPS
folder; default: where `verify` looks, else a deterministic synthetic batch, with a warning),
--verify-timeout SECONDS.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from harness.checks.compare import PASS
from harness.report.model import Report
from harness.report.text import summary_line, verdict_blocks, verdict_line


def pytest_addoption(parser):
    group = parser.getgroup("verify", "LeCun-1989 backprop verification")
    group.addoption("--verify-data", metavar="DIR", default=None,
                    help="USPS folder for verify_candidate (default: where `verify` looks, "
                    "else a synthetic batch)")
    group.addoption("--verify-timeout", type=float, default=120.0, metavar="SECONDS",
                    help="seconds a candidate call may take before it is reported as hung")


def load_patterns(samples: int, seed: int = 0, data: str | None = None):
    """(x, y, source): the first `samples` training digits of classes 0, 1, 2, ... from the
    USPS data, or a synthetic batch when no data is found and no folder was named."""
    from harness import data as D
    from harness.cli import UsageError, pick_digits

    if samples < 1:
        raise ValueError(f"verify_candidate: samples must be at least 1, got {samples}")
    try:
        usps = D.load_usps(data, allow_hub=False)
    except D.DataError:
        if data is not None:
            raise  # a folder the user named is never replaced by synthetic digits
        x, y = D.synthetic_batch(samples, seed=seed)
        return x, y, "synthetic"
    try:
        x, y, idx = pick_digits(usps, samples)
    except UsageError as e:
        raise ValueError(f"verify_candidate: {e}") from None
    return x, y, f"{usps.source} (train indices {idx})"


def run_verify(candidate, samples: int = 1, *, preset: str = "paper", seed: int = 0,
               data: str | None = None, timeout: float = 120.0) -> Report:
    """Check `candidate` as `verify --candidate` does; return the Report (never raises for a
    faulty candidate: its faults are failed checks)."""
    from harness.checks.verify_candidate import run_candidate_checks
    from reference.spec import preset as make_spec

    spec = make_spec(preset)
    x, y, source = load_patterns(samples, seed, data)
    name = candidate if isinstance(candidate, str) else str(
        getattr(candidate, "name", None) or type(candidate).__name__)
    report = Report(candidate=name, data_source=source, samples=len(x), dtype="float64",
                    seed=seed, preset=preset)
    if source == "synthetic":
        note = "no USPS data found: checked on a deterministic synthetic batch"
        report.notes.append(note)
        warnings.warn(f"verify_candidate: {note} (give --verify-data DIR)", stacklevel=2)
    run_candidate_checks(report, candidate, spec, None, np.asarray(x), np.asarray(y),
                         timeout=timeout, seed=seed)
    return report


def failure_text(report: Report) -> str:
    """The summary, the origins (where each fault is made) first, then every other check
    that did not pass (what the origins spread to, and what could not run)."""
    from harness.checks.localize import origins, summarize

    lines = [summary_line(report)]
    first = origins(report)
    if first:
        s = summarize(report)
        lines.append(f"origins: first in forward order {s['first_origin_forward']}, in "
                     f"backward order {s['first_origin_backward']}")
        for c in first:
            lines += verdict_line(c)
        lines.append("other checks that did not pass (spread from the origins, or not run):")
    shown = {id(c) for c in first}  # by identity: equal-looking checks stay distinct
    rest = [c for c in report.sorted_checks() if c.status != PASS and id(c) not in shown]
    for block, _ in verdict_blocks(rest):  # NOT RUN checks of one cause on one line
        lines += block
    return "\n".join(lines)


def assert_verified(report: Report, allow_not_run: bool = True) -> None:
    """Fail the calling test, with the verdict lines, unless every check passed (checks
    that did not run are allowed unless `allow_not_run` is False)."""
    if report.failed or (not allow_not_run and report.not_run):
        pytest.fail(failure_text(report), pytrace=False)


@pytest.fixture
def verify_candidate(request):
    """A function (candidate, samples=1, **kw) -> Report; see harness.pytest_plugin."""
    cfg = request.config
    data = cfg.getoption("verify_data", default=None)
    timeout = cfg.getoption("verify_timeout", default=120.0)

    def run(candidate, samples: int = 1, **kw) -> Report:
        kw.setdefault("data", data)
        kw.setdefault("timeout", timeout)
        return run_verify(candidate, samples, **kw)

    return run
