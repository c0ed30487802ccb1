"""The paper's optimizer checked like the first derivatives: the NumPy reference's
back-propagated Gauss-Newton diagonal (reference/sdlm.py) against the twin's, written out
explicitly in torch (reference/sdlm_torch.py), per layer and per parameter kind, at the same
patterns as the gradient checks. Both are float64; the twin tolerance applies."""

from __future__ import annotations

from harness.checks.compare import Check, compare
from harness.checks.tolerance import tolerance_for


def sdlm_checks(spec, params, x, labels) -> list[Check]:
    from reference.sdlm_torch import sdlm_check_arrays

    tol = tolerance_for("twin", "float64")
    out = []
    for name, (h_ref, h_twin) in sdlm_check_arrays(spec, params, x, labels).items():
        layer, kind = name.split(".")
        out.append(compare(h_twin, h_ref, tol, layer, f"sdlm_diag_{kind}", "twin",
                           subject="reference", mode="chain"))
    return out
