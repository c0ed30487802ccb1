"""The CI regression gate: run three things, compare each figure with a committed baseline.

Items (each a name, a measured value, the baseline value, and a stated tolerance):
    reference/*     `verify` on the first digit of classes 0-3: every check passes, the
                    number of checks is the same, and the largest share of tolerance used
                    has not grown more than 10x (a decade: the figures are rounding noise,
                    which moves with BLAS and CPU, but not by orders of magnitude)
    selftest/*      the fault catalog: the number of faults, detection and localization
                    rates exactly; false alarms 0 over the gate's trials; the smallest fault
                    margin not shrunk more than 10x
    training/L/*    one pass of per-sample SGD (paper preset, seed 0) over the first 1,000
                    training digits: train and test MSE within 1e-6 relative, misses
                    exactly (same order, same arithmetic: only a change of code moves them).
                    L is the layout the digits came in: `text` (the classic files' values)
                    or `png` (the parquet layout and the hub: pixels p/127.5 - 1, up to
                    1/127.5 away), and each layout has its own baseline figures
The baseline lives in reports/gate/baseline.json, written only by --update-baseline.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BASELINE = Path(__file__).resolve().parents[2] / "reports" / "gate" / "baseline.json"
GATE_TRIALS = 6  # false-alarm trials inside the gate; `verify selftest` runs the full 50


@dataclass
class Item:
    name: str
    value: float
    rule: str  # "equal", "rel:<tol>", "decade_up", "decade_down", "zero"
    baseline: float | None = None
    ok: bool | None = None
    message: str = ""

    def judge(self) -> None:
        b, v = self.baseline, self.value
        if b is None:
            self.ok, self.message = False, "no baseline (run with --update-baseline)"
            return
        if self.rule == "equal":
            self.ok = v == b
        elif self.rule.startswith("rel:"):
            tol = float(self.rule[4:])
            self.ok = abs(v - b) <= tol * max(abs(b), 1e-300)
        elif self.rule == "decade_up":  # may shrink freely; may grow at most 10x
            self.ok = v <= 10 * b if b > 0 else v <= 1e-12
        elif self.rule == "decade_down":  # may grow freely; may shrink at most 10x
            self.ok = v >= b / 10
        elif self.rule == "zero":
            self.ok = v == 0
        else:
            raise ValueError(f"unknown rule {self.rule!r} for gate item {self.name}")
        moved = "" if b == v else f" (moved by {v - b:+.3g}" + (
            f", x{v / b:.3g})" if b not in (0, 0.0) and not math.isinf(b) else ")")
        self.message = f"{self.name}: {v:.6g}, baseline {b:.6g}, rule {self.rule}{moved}"


def reference_items(data) -> tuple[list[Item], list]:
    from harness.checks.verify_reference import run_reference_checks
    from harness.cli import pick_digits
    from reference.params import init_params
    from reference.spec import paper

    x, y, _ = pick_digits(data, 4)
    checks = run_reference_checks(paper(), init_params(paper(), 0), x, y)
    ratios = [c.ratio for c in checks if c.ratio == c.ratio]
    return [
        Item("reference/failed_checks", float(sum(not c.ok for c in checks)), "zero"),
        Item("reference/n_checks", float(len(checks)), "equal"),
        Item("reference/max_share_of_tolerance", float(max(ratios)), "decade_up"),
    ], checks


def selftest_items(progress=None) -> tuple[list[Item], dict]:
    from harness.selftest.runner import run_selftest

    res = run_selftest(trials=GATE_TRIALS, progress=progress)
    return [
        Item("selftest/n_faults", float(len(res.faults)), "equal"),
        Item("selftest/detection_rate", float(res.detection_rate), "equal"),
        Item("selftest/localization_rate", float(res.localization_rate), "equal"),
        Item("selftest/false_alarms", float(res.false_alarms), "zero"),
        Item("selftest/min_fault_margin", float(res.fault_margin), "decade_down"),
    ], res.to_dict()


def training_items(data) -> tuple[list[Item], dict]:
    from harness.train.loop import TrainConfig, train

    cfg = TrainConfig(preset="paper", optimizer="sgd", passes=1, seed=0, train_limit=1000)
    res = train(cfg, data)
    tr, te = res.final("train"), res.final("test")
    at = f"training/{data_layout(data.source)}"
    return [
        Item(f"{at}/train_mse", float(tr["mse"]), "rel:1e-6"),
        Item(f"{at}/test_mse", float(te["mse"]), "rel:1e-6"),
        Item(f"{at}/train_misses", float(tr["misses"]), "equal"),
        Item(f"{at}/test_misses", float(te["misses"]), "equal"),
    ], {"records": res.records}


def data_layout(source: str) -> str:
    """`text` for the classic files, `png` for the parquet layout and the hub: their values
    differ by up to 1/127.5, which moves training figures past the gate's rules."""
    return "text" if source.startswith("text:") else "png"


def load_baseline(path: Path = BASELINE) -> dict[str, float]:
    try:
        d = json.loads(path.read_text())
        return {k: float(v) for k, v in d["items"].items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a gate baseline ({e}); rewrite it with "
                         "`verify gate --update-baseline`") from None


def baseline_text(items: list[Item], old: dict | None = None) -> str:
    """The baseline of `items`; items of `old` (a parsed baseline file) that this run did
    not measure, such as the other data layout's training figures, are kept."""
    old = old or {}
    rules = {**old.get("rules", {}), **{i.name: i.rule for i in items}}
    values = {**old.get("items", {}), **{i.name: _num(i.value) for i in items}}
    body = {"what": "verify gate baseline; rewrite only with `verify gate --update-baseline`",
            "rules": rules, "items": values}
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def _num(v: float):
    return v if np.isfinite(v) else str(v)
