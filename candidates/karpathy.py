"""Built-in `karpathy`: the NumPy reference under the karpathy preset (plain tanh,
U[-2.4/sqrt(F), 2.4/sqrt(F)] weights, zero hidden biases, output biases -1), the choices of
karpathy/lecun1989-repro as declared in reference/spec.py."""

from __future__ import annotations

from candidates.adapters import AdaptedCandidate
from candidates.reference_candidate import reference_candidate
from reference.spec import karpathy


def build(seed: int = 0) -> AdaptedCandidate:
    return reference_candidate(karpathy(), seed, name="karpathy")
