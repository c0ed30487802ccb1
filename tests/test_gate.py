"""`verify gate`: its rules, and that a fault injected into the reference fails its item."""

from __future__ import annotations

import json

import pytest

from harness.gate import items as gate
from harness.gate.items import Item


@pytest.mark.parametrize("rule,base,value,ok", [
    ("equal", 29, 29, True), ("equal", 29, 28, False),
    ("zero", 0, 0, True), ("zero", 0, 1, False),
    ("rel:1e-6", 0.25, 0.25 * (1 + 5e-7), True), ("rel:1e-6", 0.25, 0.25 * (1 + 2e-6), False),
    ("decade_up", 0.02, 0.15, True), ("decade_up", 0.02, 0.3, False),
    ("decade_down", 140.0, 20.0, True), ("decade_down", 140.0, 10.0, False),
])
def test_item_rules(rule, base, value, ok):
    it = Item("x/y", float(value), rule, baseline=float(base))
    it.judge()
    assert it.ok is ok
    assert "x/y" in it.message and ("moved" in it.message) == (base != value)


def test_missing_baseline_fails_the_item():
    it = Item("x/y", 1.0, "equal")
    it.judge()
    assert it.ok is False and "--update-baseline" in it.message


@pytest.mark.data
def test_a_fault_in_the_reference_fails_the_gate_item(usps_dir, monkeypatch):
    from harness.data import load_usps
    from reference.numpy_net import ConvLayer

    data = load_usps(usps_dir)
    real = ConvLayer.backward

    def faulty(self, dy, need_dx=True):
        dx, g = real(self, dy, need_dx)
        if self.name == "H2":
            g["b"] = g["b"] * 1.01  # a 1% error in H2's bias gradient
        return dx, g

    monkeypatch.setattr(ConvLayer, "backward", faulty)
    items, checks = gate.reference_items(data)
    base = gate.load_baseline()
    for it in items:
        it.baseline = base.get(it.name)
        it.judge()
    failed = {it.name for it in items if not it.ok}
    assert "reference/failed_checks" in failed
    assert any(c.layer == "H2" and c.quantity == "bias_grad" and not c.ok for c in checks)


def test_committed_baseline_is_complete():
    base = gate.load_baseline()
    assert set(base) >= {"reference/failed_checks", "selftest/detection_rate",
                         "selftest/localization_rate", "selftest/false_alarms",
                         "training/text/train_mse", "training/text/test_misses",
                         "training/png/train_mse", "training/png/test_misses"}
    assert base["selftest/detection_rate"] == 1.0 and base["selftest/false_alarms"] == 0


def test_corrupt_baseline_is_named(tmp_path):
    p = tmp_path / "baseline.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="baseline.json"):
        gate.load_baseline(p)
    p.write_text(json.dumps({"items": {"a": "x"}}))
    with pytest.raises(ValueError, match="baseline.json"):
        gate.load_baseline(p)


@pytest.mark.data
def test_gate_command_exits_1_naming_the_item(usps_dir, monkeypatch, capsys, tmp_path):
    """`verify gate` with a fault in the reference: exit 1, the moved item named, JUnit
    written. The self-test and training items are stood in by their baseline values (they
    have their own tests and run for real in .ci/run)."""
    import xml.etree.ElementTree as ET

    from harness.cli import main
    from reference.numpy_net import DenseLayer

    base = gate.load_baseline()

    def at_baseline(prefix):
        return lambda *a, **k: ([Item(n, v, "equal") for n, v in base.items()
                                 if n.startswith(prefix)], {})

    monkeypatch.setattr(gate, "selftest_items", at_baseline("selftest/"))
    monkeypatch.setattr(gate, "training_items", at_baseline("training/"))
    real = DenseLayer.backward

    def faulty(self, dy, need_dx=True):
        dx, g = real(self, dy, need_dx)
        if self.name == "out":
            g["w"] = g["w"].T.reshape(g["w"].shape)  # a transposed dense weight gradient
        return dx, g

    monkeypatch.setattr(DenseLayer, "backward", faulty)
    junit = tmp_path / "gate.xml"
    rc = main(["gate", "--data", str(usps_dir), "--junit", str(junit), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "gate FAILED" in out and "reference/failed_checks" in out
    suite = ET.parse(junit).getroot()
    assert int(suite.get("failures")) >= 2  # the out weight_grad checks and the gate item


def test_training_figures_are_kept_per_data_layout():
    """The hub's PNG pixels differ from the text values by up to 1/127.5, which moves the
    training figures past their rules: each layout has its own, and rewriting the baseline
    on one layout keeps the other's."""
    from harness.gate.items import baseline_text, data_layout

    assert data_layout("text:../shared/data/usps") == "text"
    assert data_layout("parquet:../shared/data/usps/data") == "png"
    assert data_layout("hub:flwrlabs/usps") == "png"
    old = {"items": {"training/png/train_mse": 0.5}, "rules": {"training/png/train_mse": "x"}}
    new = json.loads(baseline_text([Item("training/text/train_mse", 0.25, "rel:1e-6")], old))
    assert new["items"] == {"training/png/train_mse": 0.5, "training/text/train_mse": 0.25}
    assert new["rules"]["training/text/train_mse"] == "rel:1e-6"
