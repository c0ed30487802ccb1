"""Built-in candidates by name, and the errors raised while building or loading one.

    reference        the NumPy reference, paper preset (the harness self-test)
    karpathy         the NumPy reference, karpathy preset
    notebook         the seed notebook's network, faults included (needs the extra dmlearn)
    notebook-fixed   the same network with every backward fault corrected (NumPy only)
"""

from __future__ import annotations

import importlib

# name -> "module:function(seed)"; imported only when built, so a missing optional extra
# breaks only the candidate that needs it
BUILTINS: dict[str, str] = {
    "reference": "candidates.reference_candidate:build",
    "karpathy": "candidates.karpathy:build",
    "notebook": "candidates.notebook:build",
    "notebook-fixed": "candidates.notebook_fixed:build",
}


class CandidateLoadError(Exception):
    """A candidate could not be built or loaded; the message says what and where."""


class MissingExtraError(CandidateLoadError):
    """A built-in candidate needs an optional dependency that is not installed."""

    def __init__(self, candidate: str, package: str, extra: str):
        super().__init__(
            f"candidate {candidate!r} needs the optional extra {package}: "
            f"pip install '.[{extra}]'"
        )
        self.candidate, self.package, self.extra = candidate, package, extra


def build(name: str, seed: int = 0):
    """Build built-in candidate `name` with parameters initialised from `seed`."""
    if name not in BUILTINS:
        raise CandidateLoadError(
            f"unknown built-in candidate {name!r}; built-ins are {sorted(BUILTINS)}"
        )
    module, func = BUILTINS[name].split(":")
    return getattr(importlib.import_module(module), func)(seed)
