"""`verify selftest`: does the harness catch what it claims, and does it stay quiet otherwise?

Two halves, both measured, nothing assumed:

Faults (harness/selftest/faults.py). Each catalog entry runs through the same code path as a user's
candidate, `harness.checks.verify_candidate.run_candidate_checks`, on one pattern.
    detected   some check failed
    localized  the declared (layer, quantity) is among the origins (harness.checks.localize: the
               failed isolated checks) AND no origin lies in another layer. A forward fault
               legitimately breaks its own layer's gradients too (they are computed from the
               wrong activation), and a weight update inside backward also fails that layer's
               params_unchanged check: those stay in the declared layer and are allowed.
    margin     the smallest ratio |error| / tolerance among the FAILED isolated checks at the
               declared (layer, quantity): how far past the tolerance the fault was caught by
               its least sensitive check (>1 caught; inf when caught by shape or NaN).
A control (the reference restated in steps, harness/selftest/faults.py) must pass every check.

False alarms. Correct implementations run on `trials` (seed, input) pairs; every failed
check is a false alarm. Inputs cycle over real digits and hard cases: saturated units
(every parameter x10), large weights (x3), an all -1 image, and outputs put on their
targets (near-zero gradients). Implementations:
    reference, twin   float64 and float32: the reference against central differences, the
                      twin against the reference and against the differences; the
                      differences (float64, the slow part) are taken once per trial and
                      reused for both dtypes
    reference via the candidate path, notebook-fixed   float64 through run_candidate_checks
The margin on this side is the largest clean ratio (<= 1 passes), per implementation and
dtype. Trials run in parallel over the machine's cores (joblib).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.checks.compare import FAIL, NOT_RUN
from harness.selftest.faults import CATALOG, CONTROLS, Fault, build_fault

KINDS = ("digit", "saturated", "digit", "all_minus1", "digit", "large_weights", "digit",
         "at_target")
SCALE = {"saturated": 10.0, "large_weights": 3.0}
DEFAULT_TRIALS = 50
MIN_FAULTS = 24  # issue 4: at least 24 faults


# ---------------------------------------------------------------- faults

@dataclass
class FaultResult:
    name: str
    description: str
    layer: str
    quantity: str
    detected: bool
    localized: bool
    margin: float  # smallest failed ratio at the declared pair; nan if not failed there
    margin_check: str  # which check gave it
    origins: list[str]
    n_failed: int
    seconds: float
    failed_checks: list[dict] = field(default_factory=list)  # for a harness bug report

    def to_dict(self):
        d = asdict(self)
        d["margin"] = _jsonable(self.margin)
        return d


def _jsonable(v):
    if isinstance(v, float) and not np.isfinite(v):
        return None if np.isnan(v) else "inf"
    return v


def _ratio(c) -> float:
    r = c.ratio
    return float("inf") if r != r else float(r)  # a shape/None failure has no ratio


def judge(fault: Fault, report, seconds: float = 0.0) -> FaultResult:
    """Detected / localized / margin of one fault's report (rule in the module docstring)."""
    from harness.checks.localize import origins

    orig = origins(report)
    pairs = {(c.layer, c.quantity) for c in orig}
    detected = bool(report.failed)
    localized = ((fault.layer, fault.quantity) in pairs
                 and all(c.layer == fault.layer for c in orig))
    at = [c for c in report.failed if c.mode == "isolated"
          and (c.layer, c.quantity) == (fault.layer, fault.quantity)]
    best = min(at, key=_ratio) if at else None
    return FaultResult(
        fault.name, fault.description, fault.layer, fault.quantity, detected, localized,
        _ratio(best) if best else float("nan"),
        f"vs {best.against}" + (f" ({best.reason})" if best and best.ratio != best.ratio
                                else "") if best else "",
        [f"{c.layer} {c.quantity}" for c in orig], len(report.failed), seconds,
        [{"layer": c.layer, "quantity": c.quantity, "against": c.against, "mode": c.mode,
          "ratio": _jsonable(float(c.ratio))} for c in report.failed])


def run_fault(fault: Fault, spec, x, y, seed=0, timeout=60.0) -> FaultResult:
    from harness.checks.verify_candidate import run_candidate_checks
    from harness.report.model import Report

    t0 = time.perf_counter()
    report = Report(f"fault:{fault.name}", "selftest", len(x), "float64", seed, spec.name)
    run_candidate_checks(report, build_fault(fault, spec, seed), spec, None, x, y,
                         timeout=timeout, seed=seed)
    return judge(fault, report, time.perf_counter() - t0)


# ---------------------------------------------------------------- false-alarm trials

@dataclass
class CleanStat:
    """One implementation x dtype over all trials."""
    impl: str
    dtype: str
    trials: int = 0
    checks: int = 0
    failures: int = 0
    worst_ratio: float = 0.0
    worst_where: str = ""
    not_run: str = ""  # set when this implementation could not be run at all
    required: bool = True  # a required implementation that did not run fails the gate
    failed: list = field(default_factory=list)  # (trial, check) of each false alarm
    not_run_checks: int = 0  # checks that could not run: counted apart, never as passes

    def add(self, trial: str, c) -> None:
        if c.status == NOT_RUN:
            self.not_run_checks += 1
            return
        self.checks += 1
        r = float(c.ratio) if c.ratio == c.ratio else 0.0
        if c.status == FAIL:
            self.failures += 1
            self.failed.append(f"{trial}: {c.layer} {c.quantity} vs {c.against} "
                               f"({c.mode or 'chain'}) ratio {_jsonable(float(c.ratio))} "
                               f"{c.reason}".strip())
            if c.ratio != c.ratio:
                r = float("inf")
        if r > self.worst_ratio:
            self.worst_ratio = r
            self.worst_where = f"{trial}: {c.layer} {c.quantity} vs {c.against}"

    def merge(self, other: "CleanStat") -> None:
        self.trials += other.trials
        self.checks += other.checks
        self.not_run_checks += other.not_run_checks
        self.failures += other.failures
        self.failed += other.failed
        if other.worst_ratio > self.worst_ratio:
            self.worst_ratio, self.worst_where = other.worst_ratio, other.worst_where
        self.not_run = self.not_run or other.not_run

    def to_dict(self):
        d = asdict(self)
        d["worst_ratio"] = _jsonable(self.worst_ratio)
        return d


@dataclass(frozen=True)
class Trial:
    index: int
    seed: int
    kind: str
    source: str  # "usps train[i]", "synthetic", "all -1"

    @property
    def label(self) -> str:
        return f"trial {self.index} ({self.kind}, seed {self.seed}, {self.source})"


def plan_trials(n: int, digits) -> list[Trial]:
    """n trials cycling over KINDS; `digits` is (x, y) of the real digits, or None."""
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind == "all_minus1":
            src = "all -1 image"
        elif digits is not None:
            src = f"usps train[{(i * 613) % len(digits[1])}]"
        else:
            src = f"synthetic seed {i}"
        out.append(Trial(i, i, kind, src))
    return out


def trial_input(trial: Trial, digits):
    if trial.kind == "all_minus1":
        return -np.ones((1, 1, 16, 16)), np.array([trial.seed % 10])
    if digits is not None:
        k = (trial.index * 613) % len(digits[1])
        return digits[0][k:k + 1].astype(np.float64), digits[1][k:k + 1].astype(np.int64)
    from harness.data import synthetic_batch

    return synthetic_batch(1, seed=trial.seed)


def trial_params(spec, trial: Trial, x, labels):
    """The trial's Params: seeded init, scaled for saturated / large-weight trials, or with
    out.b solved so that every output sits on its target (dE/dy ~ 1e-16)."""
    from reference.numpy_net import NumpyNet
    from reference.params import Params, init_params

    p = init_params(spec, trial.seed)
    s = SCALE.get(trial.kind)
    if s:
        return Params(spec, {k: v * s for k, v in p.items()})
    if trial.kind == "at_target":
        net = NumpyNet(spec, p)
        h = x
        for layer in net.layers[:-1]:
            h = layer.forward(h)
        t = net.loss.targets(labels)[0]
        a = np.arctanh(t / spec.act_amplitude) / spec.act_slope
        arrays = dict(p.items())
        arrays["out.b"] = a - (h @ p["out.w"].T)[0]
        return Params(spec, arrays)
    return p


def _ref_twin_trial(spec, params, x, labels, trial: Trial) -> dict:
    """reference and twin, float64 and float32, against one set of finite differences."""
    from harness.checks.finite_diff import reference_fd
    from harness.checks.verify_reference import run_reference_checks
    from reference.numpy_net import NumpyNet

    fd = reference_fd(NumpyNet(spec, params, np.float64), x, labels)
    stats = {}
    for dt in ("float64", "float32"):
        s_ref, s_twin = CleanStat("reference", dt, 1), CleanStat("twin", dt, 1)
        for c in run_reference_checks(spec, params, x, labels, dtype=dt, fd=fd):
            if c.quantity == "params_unchanged":
                s_ref.add(trial.label, c)
            elif c.subject == "reference" and c.against == "finite_diff":
                s_ref.add(trial.label, c)
            else:
                s_twin.add(trial.label, c)
        stats[("reference", dt)], stats[("twin", dt)] = s_ref, s_twin
    return stats


def _candidate_trial(name, cand, spec, params, x, labels, trial, timeout,
                     dtype="float64") -> CleanStat:
    from harness.checks.verify_candidate import run_candidate_checks
    from harness.report.model import Report

    report = Report(name, trial.source, 1, dtype, trial.seed, "")
    run_candidate_checks(report, cand, spec, params, x, labels, timeout=timeout,
                         seed=trial.seed, dtype=dtype)
    st = CleanStat(name, dtype, 1)
    for c in report.checks:
        if c.status == NOT_RUN and c.quantity == "chain":
            continue  # float32 runs check layers in isolation only; said in its report
        st.add(trial.label, c)
    return st


def _reference_candidate(spec, params):
    """The reference through the candidate path, with spec=None so that run_candidate_checks
    uses the trial's params (with a spec it re-initialises them from the seed)."""
    from candidates.adapters import AdaptedCandidate
    from candidates.reference_candidate import reference_candidate

    c = reference_candidate(spec, params=params)
    return AdaptedCandidate("reference (candidate path)", None, c.layers, c.loss_fn,
                            c.loss_grad_fn)


def _put_on_target(cand, x, labels, steps=60):
    """Newton on the output layer's bias (each output unit has its own) until every output
    equals the target implied by the candidate's MSE-mean loss: t = y - dE/dy * y.size / 2."""
    h = np.asarray(x, dtype=np.float64)
    for layer in cand.layers[:-1]:
        h = layer.forward(h)
    out = cand.layers[-1]
    p = out.get_params()
    y = np.asarray(out.forward(h))
    t = y - cand.loss_grad(y, labels) * y.size / 2.0
    b = np.array(p["b"], dtype=np.float64)
    for _ in range(steps):
        y = np.asarray(out.forward(h)).reshape(b.shape)
        r = y - t.reshape(b.shape)
        if np.max(np.abs(r)) == 0.0:
            break
        e = 1e-7
        out.set_params({**p, "b": b + e})
        yp = np.asarray(out.forward(h)).reshape(b.shape)
        out.set_params({**p, "b": b - e})
        ym = np.asarray(out.forward(h)).reshape(b.shape)
        slope = (yp - ym) / (2 * e)
        b = b - np.where(slope != 0, r / np.where(slope != 0, slope, 1.0), 0.0)
        out.set_params({**p, "b": b})
    out.set_params({**p, "b": b})


def _notebook_fixed(trial, x, labels):
    """The built-in notebook-fixed, its own parameters prepared like the reference's."""
    from candidates.registry import build

    cand = build("notebook-fixed", trial.seed)
    s = SCALE.get(trial.kind)
    if s:
        for layer in cand.layers:
            layer.set_params({k: v * s for k, v in layer.get_params().items()})
    if trial.kind == "at_target":
        _put_on_target(cand, x, labels)
    return cand


def run_trial(spec, trial: Trial, digits, timeout=60.0, with_notebook=True) -> dict:
    """Every implementation on one trial: {(impl, dtype): CleanStat}."""
    import torch

    torch.set_num_threads(1)
    x, labels = trial_input(trial, digits)
    params = trial_params(spec, trial, x, labels)
    stats = _ref_twin_trial(spec, params, x, labels, trial)
    stats[("reference (candidate path)", "float64")] = _candidate_trial(
        "reference (candidate path)", _reference_candidate(spec, params), spec, params, x,
        labels, trial, timeout)
    if with_notebook:
        cand = _notebook_fixed(trial, x, labels)
        stats[("notebook-fixed", "float64")] = _candidate_trial(
            "notebook-fixed", cand, spec, None, x, labels, trial, timeout)
        stats[("notebook-fixed", "float32")] = _candidate_trial(
            "notebook-fixed", cand, spec, None, x, labels, trial, timeout, "float32")
    return stats


def notebook_fixed_status() -> str:
    """'' when the built-in notebook-fixed can be built, else why not."""
    try:
        from candidates.registry import build

        build("notebook-fixed", 0)
    except Exception as e:  # noqa: BLE001 - any failure means NOT RUN, with its reason
        return f"could not build notebook-fixed: {type(e).__name__}: {e}"
    return ""


# ---------------------------------------------------------------- the whole self-test

@dataclass
class SelftestResult:
    faults: list[FaultResult]
    controls: list[FaultResult]
    clean: list[CleanStat]
    trials: int
    trial_kinds: dict
    data_source: str
    notes: list[str]
    seconds: float

    @property
    def detection_rate(self) -> float:
        return sum(f.detected for f in self.faults) / max(len(self.faults), 1)

    @property
    def localization_rate(self) -> float:
        return sum(f.localized for f in self.faults) / max(len(self.faults), 1)

    @property
    def false_alarms(self) -> int:
        return sum(s.failures for s in self.clean) + sum(c.n_failed for c in self.controls)

    @property
    def not_run(self) -> list[str]:
        return [f"{s.impl} {s.dtype}: {s.not_run}" for s in self.clean if s.not_run]

    @property
    def blocking_not_run(self) -> list[str]:
        """Required implementations that did not run, or ran without one check running."""
        return [f"{s.impl} {s.dtype}" for s in self.clean
                if s.required and (s.not_run or s.checks == 0)]

    @property
    def incomplete(self) -> list[str]:
        """Why this run is less than the gate issue 4 sets (empty: it is the whole gate)."""
        why = []
        if len(self.faults) < MIN_FAULTS:
            why.append(f"{len(self.faults)} faults, the gate needs at least {MIN_FAULTS}")
        if self.trials < DEFAULT_TRIALS:
            why.append(f"{self.trials} false-alarm trials, the gate needs {DEFAULT_TRIALS}")
        if self.data_source == "synthetic":
            why.append("no real digits: synthetic stroke digits stood in")
        missing = [k for k in dict.fromkeys(KINDS) if not self.trial_kinds.get(k)]
        if missing:
            why.append(f"no trials of kind {', '.join(missing)}")
        return why

    @property
    def fault_margin(self) -> float:
        m = [f.margin for f in self.faults if f.detected and f.margin == f.margin]
        return min(m) if m else float("nan")

    @property
    def clean_margin(self) -> float:
        r = [s.worst_ratio for s in self.clean if not s.not_run]
        return max(r) if r else float("nan")

    @property
    def passed(self) -> bool:
        return (bool(self.faults) and self.detection_rate == 1.0
                and self.localization_rate == 1.0 and self.false_alarms == 0
                and not self.blocking_not_run)

    def to_dict(self) -> dict:
        return {
            "verdict": ("fail" if not self.passed else
                        "pass_subset" if self.incomplete else "pass"),
            "complete": not self.incomplete,
            "incomplete": self.incomplete,
            "faults": [f.to_dict() for f in self.faults],
            "controls": [c.to_dict() for c in self.controls],
            "n_faults": len(self.faults),
            "detection_rate": self.detection_rate,
            "localization_rate": self.localization_rate,
            "fault_margin_min": _jsonable(self.fault_margin),
            "false_alarms": self.false_alarms,
            "clean": [s.to_dict() for s in self.clean],
            "clean_margin_max": _jsonable(self.clean_margin),
            "trials": self.trials,
            "trial_kinds": self.trial_kinds,
            "data_source": self.data_source,
            "not_run": self.not_run,
            "blocking_not_run": self.blocking_not_run,
            "notes": self.notes,
            "seconds": self.seconds,
            "localization_rule": "declared (layer, quantity) among the origins and no origin "
                                 "in another layer",
        }


def load_digits():
    """(x, y) of the USPS training digits, the source, and a note when they are missing."""
    from harness.data import DataError, load_usps

    try:
        d = load_usps(allow_hub=False)
    except DataError as e:
        return None, "synthetic", (f"NOT RUN: real-digit trials (no USPS data: {e}); "
                                   "synthetic stroke digits used instead")
    return (d.train_x, d.train_y), d.source, ""


def run_selftest(spec=None, trials=DEFAULT_TRIALS, faults=None, n_jobs=-1, timeout=60.0,
                 progress=None) -> SelftestResult:
    """Run the catalog and the false-alarm trials. `progress(done, total, what)`."""
    from joblib import Parallel, delayed

    from reference.spec import paper

    spec = spec or paper()
    t0 = time.perf_counter()
    faults = list(CATALOG if faults is None else faults)
    digits, source, note = load_digits()
    notes = [note] if note else []
    x, y = trial_input(Trial(0, 0, "digit", ""), digits)
    plan = plan_trials(trials, digits)
    nb = notebook_fixed_status()
    tick = progress or (lambda d, t, w: None)
    total = len(faults) + len(CONTROLS) + len(plan)

    jobs = [delayed(run_fault)(f, spec, x, y, 0, timeout) for f in list(CONTROLS) + faults]
    jobs += [delayed(run_trial)(spec, t, digits, timeout, not nb) for t in plan]
    out, done = [], 0
    for r in Parallel(n_jobs=n_jobs, return_as="generator")(jobs):
        out.append(r)
        done += 1
        tick(done, total, "faults" if done <= len(faults) + len(CONTROLS) else "trials")
    n_ctl = len(CONTROLS)
    controls, fault_res, trial_res = out[:n_ctl], out[n_ctl:n_ctl + len(faults)], \
        out[n_ctl + len(faults):]

    merged: dict = {}
    for stats in trial_res:
        for key, st in stats.items():
            merged.setdefault(key, CleanStat(*key)).merge(st)
    if nb:
        for dt in ("float64", "float32"):
            merged[("notebook-fixed", dt)] = CleanStat("notebook-fixed", dt, not_run=nb)
    merged[("reference (candidate path)", "float32")] = CleanStat(
        "reference (candidate path)", "float32", not_run="not repeated: the reference's "
        "float32 run is checked in the 'reference' and 'twin' rows", required=False)
    order = ["reference", "twin", "reference (candidate path)", "notebook-fixed"]
    clean = sorted(merged.values(), key=lambda s: (order.index(s.impl), s.dtype))
    kinds = {k: sum(t.kind == k for t in plan) for k in dict.fromkeys(KINDS)}
    return SelftestResult(fault_res, controls, clean, len(plan), kinds, source, notes,
                          time.perf_counter() - t0)
