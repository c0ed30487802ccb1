"""Candidates under the harness: origins, spread, and bad candidates as findings."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from candidate_helpers import check_on_synthetic

from harness.checks.compare import FAIL
from harness.checks.localize import origins, summarize
from harness.cli import main

FIX = Path(__file__).parent / "fixtures" / "candidates"


def _failed(r):
    return {(c.layer, c.quantity) for c in r.checks if c.status == FAIL}


def test_reference_as_candidate_has_no_origin_and_compares_every_layer():
    r = check_on_synthetic("reference")
    assert r.verdict == "pass", [c for c in r.checks if c.status == FAIL]
    against = {(c.layer, c.quantity, c.against, c.mode) for c in r.checks}
    for L in ("H1", "H2", "H3", "out"):
        for q in ("activation", "weight_grad", "bias_grad"):
            assert (L, q, "reference", "isolated") in against
        assert (L, "weight_grad", "self_fd", "chain") in against
    assert ("loss", "loss_grad", "self_fd", "isolated") in against
    assert summarize(r)["first_origin_forward"] is None


def test_user_file_outside_the_package_loads_by_path():
    r = check_on_synthetic(f"{FIX / 'good_reference.py'}:build")
    assert r.verdict == "pass"


@pytest.mark.parametrize("fixture,layer,quantity,words", [
    ("bad_raises", "H2", "runs", "RuntimeError"),
    ("bad_nan", "H2", "weight_grad", "NaN"),
    ("bad_shapes", "H3", "weight_grad", "shape"),
    ("bad_none_grad", "H2", "weight_grad", "None"),
    ("bad_mutates", "H3", "params_unchanged", "in place"),
])
def test_bad_candidates_become_findings_naming_the_layer(fixture, layer, quantity, words):
    r = check_on_synthetic(f"{FIX / fixture}.py:build")
    assert r.verdict == "fail"
    hits = [c for c in r.checks if c.status == FAIL and (c.layer, c.quantity) == (layer,
                                                                                   quantity)]
    assert hits, _failed(r)
    assert any(words in c.reason for c in hits), [c.reason for c in hits]
    # no fault is charged to a layer that is correct
    assert {c.layer for c in origins(r)} <= {layer, "all"}


def test_a_hanging_candidate_is_stopped_and_reported():
    r = check_on_synthetic(f"{FIX / 'bad_hangs.py'}:build", timeout=2.0)
    hung = [c for c in r.checks if "hung" in c.reason or "still running" in c.reason]
    assert hung and r.verdict == "fail"


@pytest.mark.parametrize("ref,exit_code,words", [
    ("nonexistent_file.py:build", 2, "nonexistent_file.py"),
    (f"{FIX / 'not_a_candidate.py'}:build", 2, "build"),
    (f"{FIX / 'bad_import.py'}:build", 2, "bad_import.py"),
    ("no_such_builtin", 2, "no_such_builtin"),
])
def test_load_failures_are_exit_2_with_a_report(ref, exit_code, words, tmp_path, no_data):
    out = tmp_path / "o.json"
    assert main(["--candidate", ref, "--json", str(out), "--no-progress"]) == exit_code
    d = json.loads(out.read_text())
    assert d["verdict"] == "fail"
    assert any(words in (c["reason"] or "") for c in d["checks"])


README = Path(__file__).parents[1] / "README.md"
README_WIDTH = 98  # the README's worked example is captured at COLUMNS=98


@pytest.fixture(scope="module")
def notebook_run(usps_dir, tmp_path_factory):
    """One `verify --candidate notebook --samples 1` on the real digits, as the README
    runs it: (exit code, console text, JSON report)."""
    pytest.importorskip("dmlearn", reason="the notebook candidate needs the dmlearn extra")
    out = tmp_path_factory.mktemp("nb") / "nb.json"
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", str(README_WIDTH))
        with contextlib.redirect_stdout(buf):
            rc = main(["--data", str(usps_dir), "--candidate", "notebook", "--samples", "1",
                       "--json", str(out), "--no-progress"])
    return rc, buf.getvalue(), json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.data
def test_notebook_faults_are_localized(notebook_run):
    rc, _, d = notebook_run
    assert rc == 1
    found = {(o["layer"], o["quantity"]) for o in d["localization"]["origins"]}
    assert found == {("H1", "weight_grad"), ("H1", "bias_grad"), ("H2", "weight_grad"),
                     ("H2", "bias_grad"), ("H2", "input_grad"), ("loss", "loss_grad")}
    assert d["localization"]["first_origin_forward"] == "H1 weight_grad"
    assert d["localization"]["first_origin_backward"] == "loss loss_grad"
    differs = {row["choice"] for row in d["conformance"] if not row["same"]}
    assert {"activation", "targets", "8-of-12 table", "kernel sizes and sharing"} <= differs


@pytest.mark.slow
@pytest.mark.data
def test_readme_worked_example_is_what_verify_prints(notebook_run):
    """The README quotes the notebook's report verbatim; a change to the checks or the
    report's wording must come with a new capture of it."""
    text = README.read_text()
    start = text.index("Its console report begins (verbatim, `COLUMNS=98`):")
    block = text[text.index("```\n", start) + 4:]
    quoted = block[:block.index("```")].rstrip("\n").split("\n")
    printed = notebook_run[1].split("\n")[:len(quoted)]
    assert [s.rstrip() for s in printed] == [s.rstrip() for s in quoted], (
        "README.md's worked example is stale: re-capture it with "
        "`COLUMNS=98 verify --data ../shared/data/usps --candidate notebook --samples 1 "
        "--no-progress`")


@pytest.mark.slow
@pytest.mark.data
def test_notebook_fixed_passes_every_gradient_check(usps_dir):
    assert main(["--data", str(usps_dir), "--candidate", "notebook-fixed", "--samples", "1",
                 "--no-progress"]) == 0


def test_group_axis_names_failing_kernels():
    from harness.checks.compare import compare
    from harness.checks.tolerance import tolerance_for

    e = np.random.default_rng(0).standard_normal((12, 1, 5, 5))
    o = e.copy()
    o[4, 0, 2, 0] += 1.0
    o[7] *= 2
    c = compare(o, e, tolerance_for("twin", "float64"), "H1", "weight_grad", "twin")
    assert c.failing_groups == [4, 7]
    assert c.worst_index[0] in (4, 7)
