"""What a user's own candidate, path or argument can throw at `verify`, from a new user's pass:
text that looks like rich markup, calls that fail or hang (their checks are NOT RUN, never
dropped, never charged to a layer that was not called), lists where arrays belong, and
argument values that used to end as "internal error"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from candidate_helpers import check_on_synthetic

from harness.checks.compare import FAIL, NOT_RUN
from harness.checks.localize import origins
from harness.cli import main
from harness.report.text import SIDE_QUANTITIES

FIX = Path(__file__).parent / "fixtures" / "candidates"
HEAD = (f"import sys\nsys.path.insert(0, {str(FIX)!r})\n"
        "from _wrapper import PassThrough, wrap\n\n")


@pytest.fixture(autouse=True)
def _one_line_per_message(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside the asserted phrases


def _candidate(tmp_path: Path, body: str, name: str = "mine.py") -> Path:
    """A user file whose layers are the reference's but for the classes in `body`."""
    f = tmp_path / name
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(HEAD + body)
    return f


def _keys(report):
    return {(c.layer, c.quantity, c.against, c.mode) for c in report.checks
            if c.quantity not in SIDE_QUANTITIES}


RAISES_H2 = '''class H2(PassThrough):
    def backward(self, x, dy):
        raise ValueError("dy should be [batch, 12], got [red]oops[/red] and [/nope]")


def build(seed=0):
    return wrap(seed, "markup", {"H2": H2})
'''


def test_markup_in_an_exception_is_printed_as_it_is(tmp_path, capsys, no_data):
    f = _candidate(tmp_path, RAISES_H2)
    line = next(n for n, s in enumerate(f.read_text().splitlines(), 1) if "raise" in s)
    js = tmp_path / "out.json"
    rc = main(["--candidate", f"{f}:build", "--samples", "1", "--json", str(js),
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "got [red]oops[/red] and [/nope]" in out
    assert "Traceback" not in out and "internal error" not in out
    # the finding says where in the user's file the exception came from
    runs = [c for c in json.loads(js.read_text())["checks"] if c["quantity"] == "runs"]
    assert any(f"{f.name}:{line} in backward" in c["reason"] for c in runs), runs


def test_brackets_in_paths_are_not_eaten(tmp_path, capsys):
    rc = main(["--data", str(tmp_path / "[bold]nothere"), "--no-progress"])
    assert rc == 2
    assert "[bold]nothere" in capsys.readouterr().out
    f = _candidate(tmp_path / "we[ird]", "def build(seed=0):\n    return wrap(seed, 'x')\n",
                   "syn.py")
    f.write_text("def build(:\n")
    rc = main(["--candidate", f"{f}:build", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 2 and "we[ird]/syn.py" in out and "(line 1)" in out


def test_a_raising_layer_keeps_every_check_as_not_run(tmp_path):
    clean = check_on_synthetic(f"{FIX}/good_reference.py:build")
    broken = check_on_synthetic(f"{FIX}/bad_raises.py:build")  # H2.backward raises
    assert _keys(broken) == _keys(clean)  # nothing dropped from the table or the counts
    by_key = {(c.layer, c.quantity, c.against, c.mode): c for c in broken.checks}
    for (layer, quantity, against, mode), c in by_key.items():
        if quantity in SIDE_QUANTITIES:
            continue
        if layer == "H2" and mode == "isolated" and quantity != "activation":
            assert c.status == NOT_RUN, (layer, quantity, against)
            assert "H2.backward: raised RuntimeError" in c.reason
        elif mode == "chain":
            assert c.status == NOT_RUN, (layer, quantity, against)
        else:  # the other layers in isolation, and H2's forward, are checked as usual
            assert c.status != NOT_RUN, (layer, quantity, against, mode)
    assert {(c.layer, c.quantity) for c in origins(broken)} == {("H2", "runs")}


def test_after_a_hang_nothing_is_charged_to_layers_never_called():
    r = check_on_synthetic(f"{FIX}/bad_hangs.py:build", timeout=2.0)  # H1.backward hangs
    assert {(c.layer, c.quantity) for c in origins(r)} == {("H1", "runs")}
    later = [c for c in r.checks if c.layer in ("H2", "H3", "out", "loss")
             and c.quantity not in SIDE_QUANTITIES]
    assert later and all(c.status == NOT_RUN for c in later)
    assert all("hung earlier" in c.reason for c in later)
    assert not [c for c in r.checks if c.status == FAIL and c.layer != "H1"
                and c.quantity != "runs"]


def test_a_layer_returning_lists_does_not_get_the_next_layer_blamed(tmp_path):
    f = _candidate(tmp_path, '''class H2(PassThrough):
    def forward(self, x):
        return self.inner.forward(x).tolist()

    def backward(self, x, dy):
        dx, g = self.inner.backward(x, dy)
        return dx.tolist(), g


def build(seed=0):
    return wrap(seed, "lists", {"H2": H2})
''')
    r = check_on_synthetic(f"{f}:build")
    assert [c for c in r.checks if c.status == FAIL] == []
    assert r.verdict == "pass"


@pytest.mark.parametrize("args, words", [
    (["--seed", "-1"], "--seed: expected a whole number >= 0, got -1"),
    (["--seed", "zero"], "--seed: expected a whole number >= 0, got 'zero'"),
    (["--timeout", "nan"], "--timeout: expected seconds > 0"),
    (["--timeout", "inf"], "--timeout: expected seconds > 0"),
    (["--timeout", "0"], "--timeout: expected seconds > 0"),
    (["--timeout", "-5"], "--timeout: expected seconds > 0"),
])
def test_bad_argument_values_are_usage_errors(args, words, capsys):
    with pytest.raises(SystemExit) as e:
        main(args + ["--no-progress"])
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_params_from_a_lone_npy_is_named(tmp_path, capsys, no_data):
    np.save(tmp_path / "arr.npy", np.zeros(3))
    rc = main(["--params", str(tmp_path / "arr.npy"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 2
    assert "arr.npy: a single array" in out and "not an .npz archive" in out
    assert "internal error" not in out


def test_a_folder_given_as_the_candidate_file_says_so(tmp_path, capsys, no_data):
    (tmp_path / "adir.py").mkdir()
    rc = main(["--candidate", f"{tmp_path / 'adir.py'}:build", "--no-progress"])
    assert rc == 2
    assert "adir.py: is a folder" in capsys.readouterr().out


def test_float32_where_float64_is_checked_is_named_as_such(tmp_path):
    f = _candidate(tmp_path, '''import numpy as np


class H2(PassThrough):
    def backward(self, x, dy):
        dx, g = self.inner.backward(x, dy)
        return dx.astype(np.float32), {k: v.astype(np.float32) for k, v in g.items()}


def build(seed=0):
    return wrap(seed, "f32", {"H2": H2})
''')
    r = check_on_synthetic(f"{f}:build")
    vs_ref = [c for c in r.checks if c.status == FAIL and c.against == "reference"]
    assert {(c.layer, c.quantity) for c in vs_ref} == {
        ("H2", "weight_grad"), ("H2", "bias_grad"), ("H2", "input_grad")}
    assert all("float32 precision" in c.hint for c in vs_ref), [c.hint for c in vs_ref]


@pytest.mark.parametrize("args, words", [
    (["--json", ""], "--json: an empty path"),
    (["--json", "{d}/r.out", "--markdown", "{d}/r.out"], "--json and --markdown both write"),
])
def test_report_paths_are_checked_before_any_work(args, words, tmp_path, capsys):
    rc = main([a.format(d=tmp_path) for a in args] + ["--no-progress"])
    out = capsys.readouterr().out
    assert rc == 2 and words in out
    assert "checks took" not in out  # refused before running anything
    assert not (tmp_path / "r.out").exists()


def test_the_json_says_which_exit_code_verify_returned(tmp_path, no_data):
    for ref, code in ((f"{FIX}/good_reference.py:build", 0), (f"{FIX}/bad_raises.py:build", 1),
                      (f"{tmp_path}/missing.py:build", 2)):
        js = tmp_path / "r.json"
        assert main(["--candidate", ref, "--samples", "1", "--json", str(js),
                     "--no-progress"]) == code
        assert json.loads(js.read_text())["exit_code"] == code


# ---- a user's own net (tests/fixtures/candidates/user_net*.py, from a new-user pass) ----
USER = f"{FIX}/user_net.py"
MAPBUGS = f"{FIX}/user_net_mapbugs.py"


def _failing(report):
    return {(c.layer, c.quantity) for c in report.checks if c.status == FAIL}


def test_the_users_own_net_passes():
    r = check_on_synthetic(f"{USER}:build")
    assert r.verdict == "pass", _failing(r)


@pytest.mark.parametrize("builder, words", [
    ("build_from_ref_indexerror", "H2.from_reference: raised IndexError"),
    ("build_from_ref_valueerror", "H2.from_reference: raised ValueError"),
    ("build_to_ref_raises", "H2.to_reference: raised IndexError"),
])
def test_a_broken_declared_mapping_is_a_finding_never_a_silent_pass(builder, words):
    r = check_on_synthetic(f"{MAPBUGS}:{builder}")
    assert r.verdict == "fail"
    runs = [c for c in origins(r) if (c.layer, c.quantity) == ("H2", "runs")]
    assert runs and words in runs[0].reason, [c.reason for c in origins(r)]
    assert "user_net_mapbugs.py:" in runs[0].reason  # the line of the user's file


def test_sampled_fd_reports_the_tensors_own_coordinates():
    """H2's gradient leaks into the weights its table leaves out (the user's own (12, 12, 5, 5)
    layout): the sampled own-FD check names real kernels and says why."""
    r = check_on_synthetic(f"{USER}:build_h2_dw_unmasked")
    c = next(c for c in r.checks if (c.layer, c.quantity, c.against) ==
             ("H2", "weight_grad", "self_fd") and c.mode == "isolated")
    assert c.status == FAIL and len(c.worst_index) == 4  # (12, 12, 5, 5), not the sample
    assert set(c.failing_groups) <= set(range(12)) and c.n < 12 * 12 * 25
    assert c.max_rel == float("inf") and "should be ~0" in c.hint


def test_chain_checks_do_not_call_directions_maps():
    r = check_on_synthetic(f"{USER}:build_loss_sum")
    chain = [c for c in r.checks if c.mode == "chain" and c.status == FAIL]
    assert chain and all(c.failing_groups == [] for c in chain)
    assert all("random directions" in c.reason for c in chain)


def test_a_self_consistent_layer_that_differs_from_the_reference_points_at_its_mapping():
    r = check_on_synthetic(f"{USER}:build_h3_map_not_transposed")
    assert {layer for layer, _ in _failing(r)} == {"H3"}
    ref = [c for c in r.checks if c.layer == "H3" and c.against == "reference"]
    assert ref and all("from_reference/to_reference" in c.hint for c in ref)


def test_plugin_failure_text_names_the_origin_before_the_spread():
    from harness.pytest_plugin import failure_text

    text = failure_text(check_on_synthetic(f"{USER}:build_h2_dx_no_flip")).split("\n")
    assert text[1] == ("origins: first in forward order H2 input_grad, in backward order "
                       "H2 input_grad")
    assert text[2].startswith("FAIL    H2   input_grad")


@pytest.mark.parametrize("fixture", ["bad_hangs_on_import", "bad_hangs_in_build"])
def test_importing_or_building_a_candidate_is_under_the_timeout(fixture, tmp_path, no_data):
    js = tmp_path / "r.json"
    rc = main(["--candidate", f"{FIX}/{fixture}.py:build", "--timeout", "2", "--samples", "1",
               "--json", str(js), "--no-progress"])
    d = json.loads(js.read_text())  # a report is written: nothing blocks forever
    assert rc == 2 and d["exit_code"] == 2
    (load,) = [c for c in d["checks"] if c["quantity"] == "load"]
    assert "still running after 2 s" in load["reason"]


def test_a_candidate_calling_os_exit_is_a_finding_not_a_green_exit():
    r = check_on_synthetic(f"{FIX}/bad_exits_process.py:build")
    runs = [c for c in origins(r) if (c.layer, c.quantity) == ("H2", "runs")]
    assert runs and "os._exit(0) was called" in runs[0].reason
    assert r.verdict == "fail"


def test_plugin_groups_not_run_checks_and_warns_on_synthetic_digits(no_data):
    from harness.pytest_plugin import failure_text, run_verify

    with pytest.warns(UserWarning, match="deterministic synthetic batch"):
        r = run_verify(f"{FIX}/bad_hangs.py:build", timeout=2.0)  # H1.backward hangs
    text = failure_text(r)
    assert text.split("\n")[1].startswith("origins: first in forward order H1 runs")
    not_run_lines = [s for s in text.split("\n") if s.startswith("NOT RUN")]
    assert r.counts()["not_run"] > 20  # many checks could not run ...
    assert len(not_run_lines) < 8  # ... shown as a few lines, one per cause
