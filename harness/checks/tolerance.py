"""The tolerance policy: one place that says how close is close enough, and why.

An element passes when  |obtained - expected| <= atol + rtol * |expected|,  with
    atol = max(floor * max|expected over the whole tensor|, tiny).
NaN or Inf on either side never passes; a shape mismatch never passes.

Why a scale-relative floor: a purely relative test cries wolf where the expected value is
near zero (a gradient entry that is 1e-19 because its unit is saturated), since rounding
errors in a sum scale with the size of the summands, not with the size of the result. The
summands of every entry of one tensor are bounded by that tensor's scale, so the floor is a
fraction of the tensor's largest entry. It cannot hide a real fault: a fault that only moves
entries by less than `floor` times the largest entry is below what the dtype can resolve.
`tiny` keeps an all-zero expected tensor from demanding exact zeros of a float computation.

Why a signal term: when every output sits on its target, the true gradients are ~0 and
what a float computation returns is the rounding of (y - t), about eps * |t| per output,
carried back through the net: eps times the tensor's gradient for a unit error signal. That
scale (`signal_scale`, the gradient of each tensor when every output is off by 1, from the
float64 reference) times `signal` (a few hundred eps of the dtype) is the third term of atol.
Away from the target the floor term dominates it, so it only matters where it is needed.

Each figure below was checked on the real digits and on hard inputs (saturated units, all -1
images, large weights) by `verify selftest`'s false-alarm trials; the worst clean error is
reported there as a fraction of the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    floor: float
    tiny: float
    why: str
    signal: float = 0.0

    def atol(self, expected: np.ndarray, signal_scale: float = 0.0) -> float:
        """max(floor * max|expected|, tiny, signal * signal_scale); see the module notes."""
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
        if not np.isfinite(scale):
            scale = 0.0
        return max(self.floor * scale, self.tiny, self.signal * signal_scale)


# (against, dtype of the implementation under test) -> Tolerance
POLICY: dict[tuple[str, str], Tolerance] = {
    ("twin", "float64"): Tolerance(
        rtol=1e-10, floor=1e-10, tiny=1e-30, signal=1e-13,
        why="two correct float64 implementations of the same sums agree to ~1e-15 relative; "
        "different summation orders over <=300 terms stay below 1e-13, so 1e-10 leaves 1000x "
        "room and still flags any real fault, which moves entries by 1e-3 or more",
    ),
    ("twin", "float32"): Tolerance(
        rtol=1e-4, floor=1e-4, tiny=1e-30, signal=1e-5,
        why="float32 has eps 6e-8; after four layers and sums of up to 300 terms the error "
        "vs float64 is ~1e-6 of the tensor's scale; 1e-4 leaves ~100x room",
    ),
    ("finite_diff", "float64"): Tolerance(
        rtol=1e-6, floor=1e-6, tiny=1e-10,
        why="central differences with step h = 3e-5 * max(1, |theta|): truncation ~h^2 E3 "
        "(E3 a third derivative) and rounding ~eps |E| / h; measured at most 6e-8 of the "
        "tensor's max on the paper preset at init (gradients ~1e-4, rounding-dominated) and "
        "4e-10 on karpathy's; tiny 1e-10 covers the rounding of a difference quotient of a "
        "loss E <= 4 (eps * 4 / 3e-5 = 1.5e-11), for tensors whose every entry is near zero",
    ),
    ("finite_diff", "float32"): Tolerance(
        rtol=1e-4, floor=1e-4, tiny=1e-12, signal=1e-5,
        why="float32 gradients against float64 differences: the float32 rounding of the "
        "analytic gradient dominates, as for the float32 twin; signal 1e-5 is ~170 eps32 "
        "times the unit-signal gradient, for outputs on target (measured up to 60 eps32)",
    ),
}
# A candidate is held to the same standard as the twin when it is compared with the
# reference, and to the finite-difference standard when checked against its own forward.
POLICY[("reference", "float64")] = POLICY[("twin", "float64")]
POLICY[("reference", "float32")] = POLICY[("twin", "float32")]
POLICY[("self_fd", "float64")] = POLICY[("finite_diff", "float64")]
POLICY[("self_fd", "float32")] = POLICY[("finite_diff", "float32")]

# Measured max |FD - analytic| / max|analytic| over all tensors, one digit, seed 0:
#   step      1e-5     3e-5     1e-4    3e-4    1e-3
#   paper     1.6e-7   5.7e-8   1.7e-8  1.7e-8  1.8e-7  (tiny gradients: rounding dominates)
#   karpathy  5.6e-10  3.9e-10  4.3e-9  3.9e-8  4.3e-7  (truncation dominates above 3e-5)
# 3e-5 is good for both; eps**(1/3) ~ 6e-6 is the textbook optimum for an O(1) function, and
# the paper preset's small gradients push the optimum up.
FD_STEP = 3e-5


def fd_step(theta: float) -> float:
    """Central-difference step, relative above |theta| = 1."""
    return FD_STEP * max(1.0, abs(theta))


def tolerance_for(against: str, dtype) -> Tolerance:
    key = (against, np.dtype(dtype).name)
    try:
        return POLICY[key]
    except KeyError:
        raise ValueError(
            f"no tolerance for comparisons against {against!r} in {key[1]}; "
            f"known: {sorted(POLICY)}"
        ) from None


def policy_table() -> list[dict]:
    return [
        {"against": a, "dtype": d, "rtol": t.rtol, "floor": t.floor, "tiny": t.tiny,
         "signal": t.signal, "why": t.why}
        for (a, d), t in POLICY.items()
    ]
