"""Failing tests for defects found by a second new user (train, float32, HTML/JUnit, plugin).

Each test names its finding. All are small: training runs use a handful of digits and one or
two passes; verify runs use one digit.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import cli

REPO = Path(__file__).resolve().parents[1]
CANDS = REPO / "tests" / "fixtures" / "candidates"


def _train(usps_dir, out, *extra):
    return cli.main(["train", "--data", str(usps_dir), "--train-limit", "20", "--out", str(out),
                     "--no-progress", *extra])


# Finding A: README shows `verify train --resume --out runs/x  # continue an interrupted run`,
# and the checkpoint stores the run's full config, yet --resume ignores it: unless every
# setting of the first run is typed again, it refuses with exit 2, "the checkpoint is of
# another run; differing settings (checkpoint, now): {'train_limit': (20, None), ...}".
# Expected: --resume continues with the checkpoint's settings (as the README example implies).
def test_findingA_resume_as_in_readme_uses_checkpoint_settings(tmp_path, usps_dir, capsys):
    out = tmp_path / "x"
    assert _train(usps_dir, out, "--passes", "1") == 0
    capsys.readouterr()
    rc = cli.main(["train", "--data", str(usps_dir), "--resume", "--out", str(out),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0, err


# Finding B: `verify train --resume --out <folder without checkpoint>` (e.g. a typo) silently
# starts a fresh run from pass 1 with no word that nothing was resumed.
# Expected: a note (or exit 2) saying there is no checkpoint to resume from.
def test_findingB_resume_without_checkpoint_says_so(tmp_path, usps_dir, capsys):
    rc = _train(usps_dir, tmp_path / "typo", "--passes", "1", "--resume")
    cap = capsys.readouterr()
    text = (cap.out + cap.err).lower()
    assert rc == 2 or "no checkpoint" in text or "starting" in text or "fresh" in text, text


# Finding C: after --resume, results.json's seconds_per_pass holds only the passes run after
# the resume (2 entries for a 6-pass run interrupted after pass 4), while records and
# hessian_mean_per_pass cover every pass: a partial output.
def test_findingC_seconds_per_pass_complete_after_resume(tmp_path, usps_dir):
    out = tmp_path / "r"
    assert _train(usps_dir, out, "--passes", "1") == 0
    assert _train(usps_dir, out, "--passes", "2", "--resume") == 0
    res = json.loads((out / "results.json").read_text())
    assert len(res["hessian_mean_per_pass"]) == 2
    assert len(res["seconds_per_pass"]) == 2, res["seconds_per_pass"]


# Finding D: `verify train --lr -1` (paper preset, default SDLM) exits 0 and trains: --lr is
# silently ignored because it is an SGD rate (with --optimizer sgd the same value is exit 2,
# "lr must be > 0"). Likewise `--eta 5 --optimizer sgd` is silently ignored.
# Expected: exit 2 (or at least a warning) for an option that does not apply / a bad value.
def test_findingD_lr_with_sdlm_is_not_silently_ignored(tmp_path, usps_dir, capsys):
    rc = _train(usps_dir, tmp_path / "lr", "--passes", "1", "--lr", "-1")
    cap = capsys.readouterr()
    assert rc == 2 or "--lr" in cap.err, (rc, cap.err)


# Finding E: `verify train --seeds 2 --jobs 0` prints "internal error: ValueError: n_jobs == 0
# in Parallel has no meaning ... This is a bug in the harness" instead of a usage message.
# Expected: exit 2 with a message naming --jobs.
def test_findingE_jobs_zero_is_a_usage_error(tmp_path, usps_dir, capsys):
    rc = _train(usps_dir, tmp_path / "j", "--passes", "1", "--seeds", "2", "--jobs", "0")
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert rc == 2
    assert "internal error" not in text
    assert "--jobs" in text


# Finding F: for a NaN in a gradient (tests/fixtures/candidates/bad_nan.py) the failure detail
# reads "worst at (0, 0, 0, 0): obtained nan, expected nan" although the reference's value
# there is finite (JSON has worst_expected null); with "atol -" and "would pass at rtol >= -".
# Expected: the expected value is shown (or the line says it is a NaN in the candidate).
def test_findingF_nan_candidate_detail_does_not_claim_expected_nan(usps_dir, capsys):
    rc = cli.main(["--data", str(usps_dir), "--samples", "1", "--no-progress",
                   "--candidate", f"{CANDS / 'bad_nan.py'}:build"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "expected nan" not in out


# Finding G: a candidate without with_dtype() under --dtype float32: nothing runs, exit 1,
# yet the summary line (console and HTML verdict) says "PASS: 0 passed, 0 failed, 1 not run"
# and the JUnit file has 0 failures (1 skipped), so a CI JUnit view shows green while the
# job fails. Expected: verdict and JUnit agree with the exit code.
def test_findingG_float32_without_with_dtype_verdict_matches_exit(tmp_path, usps_dir, capsys):
    junit = tmp_path / "j.xml"
    rc = cli.main(["--data", str(usps_dir), "--samples", "1", "--no-progress", "--dtype",
                   "float32", "--candidate", f"{CANDS / 'good_reference.py'}:build",
                   "--junit", str(junit)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "PASS: 0 passed" not in out
    root = ET.parse(junit).getroot()
    assert int(root.get("failures")) + int(root.get("errors")) >= 1


# Finding H: for a candidate with no fault, the HTML and Markdown reports say "first origin in
# forward order: None ; in backward order: None" (a Python None leaks; the console says
# "faults (origins): none").
def test_findingH_no_python_none_in_reports(tmp_path, usps_dir):
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    rc = cli.main(["--data", str(usps_dir), "--samples", "1", "--no-progress",
                   "--candidate", f"{CANDS / 'good_reference.py'}:build",
                   "--html", str(html), "--markdown", str(md)])
    assert rc == 0
    assert "<b>None" not in html.read_text()
    assert "**None**" not in md.read_text()


# Finding I: `verify selftest --help` prints "Exit 0 only if detection and localization are
# 100%% and ..." (a literal "%%": the description is not %-formatted by argparse).
def test_findingI_selftest_help_has_no_double_percent(capsys):
    with pytest.raises(SystemExit):
        cli.main(["selftest", "--help"])
    assert "%%" not in capsys.readouterr().out


# Finding J: README (self-test section) says "`notebook-fixed` in float32 is NOT RUN: that
# network computes in float64 only", but `verify --candidate notebook-fixed --dtype float32`
# runs and passes (14 checks), `verify selftest --quick` runs notebook-fixed float32 trials
# (the NOT RUN row is "reference (candidate path) float32"), and the README's own
# "Checking your own network" says notebook-fixed has with_dtype(). The README line is false.
def test_findingJ_readme_notebook_fixed_float32_claim(tmp_path, usps_dir, capsys):
    js = tmp_path / "r.json"
    rc = cli.main(["--data", str(usps_dir), "--samples", "1", "--no-progress", "--dtype",
                   "float32", "--candidate", "notebook-fixed", "--json", str(js)])
    counts = json.loads(js.read_text())["counts"]
    capsys.readouterr()
    assert rc == 0 and counts
    readme = (REPO / "README.md").read_text()
    assert "`notebook-fixed` in float32 is NOT RUN" not in readme


# Finding K: README's "Worked example" shows the notebook's report with diagnoses in the
# origins section ("H1 bias_grad: the bias never reaches the output (own FD is exactly 0)",
# "loss loss_grad: 10x too large ..."). `verify --candidate notebook --samples 1` prints no
# such lines (even with -v): the origins list gives only max rel/abs and counts, and the
# "10x too large" text is the candidate's own declared spec in the conformance table.
def test_findingK_readme_notebook_report_diagnoses_are_printed(usps_dir, capsys):
    rc = cli.main(["--data", str(usps_dir), "--candidate", "notebook", "--samples", "1",
                   "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "never reaches the output" in out


# Finding L: `python -m harness.train.cli --help` says --parts chooses among "sweep,runs,bench"
# but the default (and accepted) parts are "sweep,runs,lockstep,bench".
def test_findingL_train_cli_parts_help_lists_lockstep(capsys):
    from harness.train import cli as train_cli

    with pytest.raises(SystemExit):
        train_cli.main(["--help"])
    assert "lockstep" in capsys.readouterr().out
