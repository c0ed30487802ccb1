"""Helpers shared by the candidate tests (pytest puts tests/ on sys.path)."""

from __future__ import annotations

from harness.checks.verify_candidate import run_candidate_checks
from harness.data import synthetic_batch
from harness.report.model import Report
from reference.spec import paper


def check_on_synthetic(ref, timeout: float = 30.0) -> Report:
    """A candidate's checks on one deterministic synthetic pattern, under the paper preset."""
    x, y = synthetic_batch(1, seed=3)
    r = Report(str(ref), "synthetic", 1, "float64", 0, "paper")
    run_candidate_checks(r, ref, paper(), None, x, y, timeout=timeout)
    return r
