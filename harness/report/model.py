"""What a `verify` run found: the checks, the data used, and the verdict.

Reporters (harness/report/console.py, harness/report/files.py) render this; nothing here
prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.checks.compare import FAIL, NOT_RUN, PASS, Check

LAYER_ORDER = ("H1", "H2", "H3", "out", "loss")
QUANTITY_ORDER = ("activation", "weight_grad", "bias_grad", "input_grad", "loss_grad",
                  "params_unchanged", "sdlm_diag_w", "sdlm_diag_b", "runs")


@dataclass
class Report:
    candidate: str
    data_source: str
    samples: int
    dtype: str
    seed: int
    preset: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: dict = field(default_factory=dict)  # extra named sections (conformance, ...)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def not_run(self) -> list[Check]:
        return [c for c in self.checks if c.status == NOT_RUN]

    @property
    def verdict(self) -> str:
        """FAIL when a check failed or when none passed (NOT RUN is never a pass)."""
        return FAIL if self.failed or not any(c.ok for c in self.checks) else PASS

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in (PASS, FAIL, NOT_RUN)}

    def sorted_checks(self) -> list[Check]:
        def key(c: Check):
            lo = LAYER_ORDER.index(c.layer) if c.layer in LAYER_ORDER else len(LAYER_ORDER)
            q = c.quantity
            qo = QUANTITY_ORDER.index(q) if q in QUANTITY_ORDER else len(QUANTITY_ORDER)
            return (lo, qo, c.subject, c.against)
        return sorted(self.checks, key=key)

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "candidate": self.candidate,
            "data": {"source": self.data_source, "samples": self.samples},
            "dtype": self.dtype,
            "seed": self.seed,
            "preset": self.preset,
            "counts": self.counts(),
            "checks": [c.to_dict() for c in self.sorted_checks()],
            "notes": list(self.notes),
            **self.sections,
        }
