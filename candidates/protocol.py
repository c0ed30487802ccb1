"""The small protocol every implementation under test speaks.

A candidate is a network split into layers, run one pattern (or a small batch) at a time.
Tensors crossing a layer boundary use the reference's layout, batch first:
    x (N, 1, 16, 16) -> H1 (N, 12, 8, 8) -> H2 (N, 12, 4, 4) -> H3 (N, 30) -> out (N, 10)
Adapters (candidates/adapters.py) convert from a user's own layout, e.g. (10, 1) columns.

Each layer:
    name       "H1", "H2", "H3" or "out" (the paper's layer it stands for)
    maps_to    the same name when its parameters can be set from the reference's (same
               sizes and meaning after `from_reference`), else None; a layer with
               maps_to=None is checked only against finite differences of its own forward
    forward(x) -> y
    backward(x, dy) -> (dx, {"w": dw, "b": db}); dx may be None for the first layer, and
               a gradient may be None where the layer has no such parameter
    get_params() / set_params({"w": ..., "b": ...}) in the candidate's own layout
    from_reference({"w", "b"}) -> own layout   (only when maps_to is set)
    to_reference({"w", "b"})   -> reference layout (for gradients; only when maps_to is set)
The reference layout of every parameter (shapes, axis order, H2's kernels in the row order
of its table, cross-correlation kernels with no flip) is in reference/params.py's docstring.
A gradient of a batch is the sum over its patterns. A mapping that raises or returns the
wrong thing is a finding at that layer, never a reason to skip its comparisons.

The network:
    name, spec (a reference.spec.NetSpec describing its declared choices, or None),
    layers (in forward order), loss(y, labels) -> float, loss_grad(y, labels) -> dE/dy.
    `labels` are integer class indices 0..9, shape (N,); targets come from the spec.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from reference.spec import NetSpec

Grads = dict[str, "np.ndarray | None"]


@runtime_checkable
class CandidateLayer(Protocol):
    name: str
    maps_to: str | None

    def forward(self, x: np.ndarray) -> np.ndarray: ...

    def backward(self, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray | None, Grads]: ...

    def get_params(self) -> dict[str, np.ndarray]: ...

    def set_params(self, params: dict[str, np.ndarray]) -> None: ...


@runtime_checkable
class Candidate(Protocol):
    name: str
    spec: NetSpec | None
    layers: list[CandidateLayer]

    def loss(self, y: np.ndarray, labels: np.ndarray) -> float: ...

    def loss_grad(self, y: np.ndarray, labels: np.ndarray) -> np.ndarray: ...


def identity_layout(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in params.items()}
