"""Compare one obtained tensor with one expected tensor under a Tolerance.

The result carries everything a report needs: max abs and rel difference, where the worst
element is (by fraction of tolerance used), how many elements fail, the smallest rtol (at the
policy's atol) and the smallest atol (at rtol 0) that would have passed, and the maps or rows
that hold failing entries. NaN or Inf never passes; shapes are compared before values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from harness.checks.tolerance import Tolerance

PASS, FAIL, NOT_RUN = "pass", "fail", "not_run"


@dataclass
class Check:
    layer: str
    quantity: str  # activation | weight_grad | bias_grad | input_grad | loss_grad | ...
    against: str  # twin | finite_diff | reference | self_fd
    status: str = NOT_RUN
    subject: str = "reference"  # what was checked
    mode: str = ""  # "isolated" (fed the reference's inputs) or "chain" (fed by itself)
    shape: tuple = ()
    max_abs: float = float("nan")
    max_rel: float = float("nan")
    worst_index: tuple | None = None
    worst_obtained: float = float("nan")
    worst_expected: float = float("nan")
    n_fail: int = 0
    n: int = 0
    rtol: float = float("nan")
    atol: float = float("nan")
    ratio: float = float("nan")  # max |d| / (atol + rtol |e|): <= 1 passes
    needed_rtol: float = float("nan")
    needed_atol: float = float("nan")
    failing_groups: list = field(default_factory=list)  # leading-axis indices with failures
    reason: str = ""
    hint: str = ""  # a likely cause, when the pattern of the error shows one

    @property
    def ok(self) -> bool:
        return self.status == PASS

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        d["shape"] = list(self.shape)
        d["worst_index"] = None if self.worst_index is None else list(self.worst_index)
        for k, v in d.items():
            if isinstance(v, float) and not np.isfinite(v):
                d[k] = None if np.isnan(v) else ("inf" if v > 0 else "-inf")
        return d


def not_run(layer, quantity, against, reason, **kw) -> Check:
    return Check(layer, quantity, against, status=NOT_RUN, reason=reason, **kw)


def compare(obtained, expected, tol: Tolerance, layer: str, quantity: str, against: str,
            group_axis: int = 0, signal_scale: float = 0.0, **kw) -> Check:
    """Compare arrays; never raises on bad values, only on programming errors.

    `group_axis` names the axis whose indices `failing_groups` lists (the map axis: 0 for a
    kernel (maps, ...), 1 for an activation (N, maps, ...)). `signal_scale` is the tensor's
    gradient for a unit error signal (harness/checks/tolerance.py explains the term)."""
    c = Check(layer, quantity, against, rtol=tol.rtol, **kw)
    if obtained is None:
        c.status, c.reason = FAIL, "returned None where an array was expected"
        return c
    try:
        a = np.asarray(obtained, dtype=np.float64)
    except (TypeError, ValueError) as e:
        c.status, c.reason = FAIL, f"not convertible to an array ({e})"
        return c
    e_ = np.asarray(expected, dtype=np.float64)
    c.shape = tuple(e_.shape)
    if a.shape != e_.shape:
        if a.size == e_.size and a.squeeze().shape == e_.squeeze().shape:
            a = a.reshape(e_.shape)  # (10, 1) vs (1, 10) etc.: same values, other layout
        else:
            c.status = FAIL
            c.reason = f"shape {tuple(a.shape)}, expected {tuple(e_.shape)}"
            return c
    c.n = int(a.size)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        c.status, c.worst_index = FAIL, idx
        c.worst_obtained, c.worst_expected = float(a[idx]), float(e_[idx])
        c.n_fail = int(bad.sum())
        c.reason = (f"{c.n_fail} NaN/Inf entries, first at {idx} (expected "
                    f"{float(e_[idx]):.6e} there); no tolerance passes NaN or Inf")
        c.max_abs = c.max_rel = c.ratio = float("inf")
        return c
    if not np.all(np.isfinite(e_)):
        c.status, c.reason = NOT_RUN, "the expected tensor holds NaN/Inf; nothing to compare to"
        return c
    c.atol = tol.atol(e_, signal_scale)
    d = np.abs(a - e_)
    ae = np.abs(e_)
    with np.errstate(invalid="ignore"):  # an infinite rtol (a test's broken policy) * 0
        allowed = c.atol + np.where(ae > 0, tol.rtol * ae, 0.0)
    ratio = d / allowed
    k = int(np.argmax(ratio)) if a.size else 0
    c.ratio = float(ratio.flat[k]) if a.size else 0.0
    c.worst_index = tuple(int(i) for i in np.unravel_index(k, a.shape)) if a.size else ()
    c.worst_obtained = float(a.flat[k]) if a.size else float("nan")
    c.worst_expected = float(e_.flat[k]) if a.size else float("nan")
    c.max_abs = float(d.max()) if a.size else 0.0
    nz = ae > 0
    fail = ratio > 1.0
    if (fail & ~nz).any():  # a failing entry whose expected value is exactly 0
        c.max_rel = float("inf")
    elif nz.any():
        c.max_rel = float((d[nz] / ae[nz]).max())
    else:
        c.max_rel = 0.0 if c.max_abs == 0 else float("inf")
    c.n_fail = int(fail.sum())
    excess = np.maximum(d - c.atol, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(excess > 0, excess / np.where(ae > 0, ae, 0.0), 0.0)
    c.needed_rtol = float(np.nanmax(need)) if a.size else 0.0
    c.needed_atol = c.max_abs
    if fail.any() and group_axis is not None and a.ndim > group_axis:
        c.failing_groups = [int(g) for g in np.unique(np.argwhere(fail)[:, group_axis])]
    c.status = FAIL if c.n_fail else PASS
    if c.n_fail:
        c.hint = _hint(a, e_, c.atol, fail)
    return c


def _hint(a: np.ndarray, e: np.ndarray, atol: float, fail: np.ndarray) -> str:
    """A likely cause read off the pattern of a failure (`fail`: the failing entries)."""
    if not np.any(np.abs(e) > atol):
        return ("expected ~0 everywhere: this parameter never reaches the output (or the "
                "loss), yet its gradient is not 0")
    if not np.any(np.abs(a) > atol):
        return "obtained ~0 everywhere: the gradient never flows here"
    if np.all(np.abs(e[fail]) <= atol):
        return (f"every failing entry ({int(fail.sum())}) should be ~0 and is not: a gradient "
                "for weights that never act (connections the table leaves out, padding)")
    nz = np.abs(e) > 1e3 * atol
    if nz.sum() >= 2:
        r = a[nz] / e[nz]
        k = float(np.median(r))
        if np.all(np.abs(r - k) <= 1e-6 * max(abs(k), 1e-300)):
            if abs(k - 1) < 1e-5:
                spread = float(np.max(np.abs(r - 1)))
                return (f"right to {spread:.0e} relative everywhere, about float32 precision: "
                        "computed in float32 (or rounded through it) where float64 is checked?")
            if abs(k + 1) < 1e-6:
                return "sign flipped everywhere"
            return f"off by one constant factor everywhere: x{k:.6g}"
    if a.ndim >= 2 and a.shape[-1] == a.shape[-2]:
        flipped = a[..., ::-1, ::-1]
        if np.allclose(flipped, e, rtol=1e-6, atol=atol):
            return "equals the expected kernel rotated by 180 degrees: a missing or extra flip"
    return ""
