"""The self-test can fail: injected faults are caught and localized, correct code passes,
and a comparator that accepts anything makes the self-test fail."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.checks.tolerance import Tolerance
from harness.data import synthetic_batch
from harness.selftest import runner as selftest
from harness.selftest.faults import CATALOG, CONTROLS, QUANTITIES, by_name
from reference.spec import paper

SPEC = paper()
X, Y = synthetic_batch(1, seed=0)
SOME = ("h1_wgrad_not_dilated", "h2_table_ignored_in_backward", "h3_flatten_order_backward",
        "out_wgrad_float32", "loss_grad_sum_not_mean")


def test_catalog_covers_every_layer_and_quantity():
    assert len(CATALOG) >= 24
    assert len({f.name for f in CATALOG}) == len(CATALOG)
    assert {f.layer for f in CATALOG} == {"H1", "H2", "H3", "out", "loss"}
    assert {f.quantity for f in CATALOG} == set(QUANTITIES)
    for L in ("H1", "H2", "H3", "out"):
        assert {f.quantity for f in CATALOG if f.layer == L} == set(QUANTITIES[:4]), L


@pytest.mark.parametrize("name", SOME)
def test_fault_detected_and_localized(name):
    r = selftest.run_fault(by_name(name), SPEC, X, Y)
    assert r.detected, r.failed_checks
    assert r.localized, r.origins
    assert r.margin > 1.0


def test_clean_reference_passes():
    control = selftest.run_fault(CONTROLS[0], SPEC, X, Y)
    assert control.n_failed == 0, control.failed_checks
    trial = selftest.Trial(0, 0, "digit", "synthetic seed 0")
    cand = selftest._reference_candidate(SPEC, selftest.trial_params(SPEC, trial, X, Y))
    st = selftest._candidate_trial("reference", cand, SPEC, cand_params(trial), X, Y, trial,
                                   60.0)
    assert st.checks > 30 and st.failures == 0, st.failed
    assert 0.0 <= st.worst_ratio <= 1.0


def cand_params(trial):
    return selftest.trial_params(SPEC, trial, X, Y)


def test_at_target_trial_puts_outputs_on_targets():
    from reference.numpy_net import NumpyNet

    trial = selftest.Trial(7, 7, "at_target", "synthetic")
    net = NumpyNet(SPEC, selftest.trial_params(SPEC, trial, X, Y))
    y = net.forward(X)
    assert np.max(np.abs(y - net.loss.targets(Y))) < 1e-12


def test_infinite_tolerance_makes_selftest_fail(monkeypatch):
    faults = [by_name(n) for n in SOME[:3]]
    ok = selftest.run_selftest(SPEC, trials=0, faults=faults, n_jobs=1)
    assert ok.detection_rate == 1.0 and ok.localization_rate == 1.0

    blind = Tolerance(rtol=np.inf, floor=np.inf, tiny=np.inf, why="broken on purpose")
    import harness.checks.verify_candidate as vc

    monkeypatch.setattr(vc, "tolerance_for", lambda against, dtype: blind)
    broken = selftest.run_selftest(SPEC, trials=0, faults=faults, n_jobs=1)
    assert broken.detection_rate < 1.0
    assert not broken.passed


@pytest.mark.slow
def test_full_selftest_cli(tmp_path):
    from harness.cli import main

    out = tmp_path / "selftest.json"
    code = main(["selftest", "--json", str(out), "--no-progress"])
    d = json.loads(out.read_text())
    assert d["n_faults"] >= 24 and d["trials"] >= 50
    assert code == (0 if d["verdict"] == "pass" else 1)
    assert code == 0, (d["detection_rate"], d["localization_rate"], d["false_alarms"])


def test_a_check_that_did_not_run_is_never_counted_as_a_pass():
    from harness.checks.compare import Check, not_run
    from harness.selftest.runner import CleanStat

    st = CleanStat("impl", "float64", 1)
    st.add("t0", not_run("H1", "weight_grad", "self_fd", "could not run"))
    assert (st.checks, st.not_run_checks, st.worst_ratio) == (0, 1, 0.0)
    res = selftest.SelftestResult([], [], [st], 1, {}, "synthetic", [], 0.0)
    assert res.blocking_not_run == ["impl float64"]  # a row where nothing ran blocks
    st.add("t0", Check("H1", "activation", "twin", status="pass", ratio=0.5))
    assert (st.checks, st.not_run_checks) == (1, 1)


def test_a_passing_subset_never_reads_as_the_gates_pass():
    faults = [by_name(n) for n in SOME[:2]]
    res = selftest.run_selftest(SPEC, trials=0, faults=faults, n_jobs=1)
    d = res.to_dict()
    assert res.passed and d["verdict"] == "pass_subset" and d["complete"] is False
    assert any("faults, the gate needs at least 24" in r for r in d["incomplete"])
    assert any("trials, the gate needs 50" in r for r in d["incomplete"])


def test_a_loss_wrong_in_value_and_gradient_alike_is_caught_against_the_reference():
    """Sum where the spec declares a mean, in E and dE/dy alike: self-consistent, so only the
    comparison with the reference's loss (declared targets and loss equal) can see it."""
    res = selftest.run_selftest(SPEC, trials=0, faults=[by_name("loss_sum_in_value_and_grad")],
                                n_jobs=1)
    (f,) = res.faults
    assert f.detected and f.localized
