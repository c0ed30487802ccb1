"""The NumPy reference (reference/numpy_net.py) seen through the candidate protocol.

Every layer maps to itself and its parameters are already in the reference layout, so
from_reference / to_reference are copies. Parametrised by a NetSpec: the `reference`
built-in uses the paper preset, `karpathy` the karpathy preset; the harness self-test runs
the reference against itself through this wrapper.
"""

from __future__ import annotations

import numpy as np

from candidates.adapters import AdaptedCandidate
from candidates.protocol import identity_layout
from reference.numpy_net import NumpyNet
from reference.params import Params, init_params
from reference.spec import NetSpec, paper


class ReferenceLayer:
    """One reference layer; backward re-runs forward on x so that it needs no prior call."""

    def __init__(self, net: NumpyNet, name: str):
        self._net, self._layer = net, net.layer[name]
        self.name = self.maps_to = name

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.array(self._layer.forward(np.asarray(x, dtype=self._net.dtype)), copy=True)

    def backward(self, x: np.ndarray, dy: np.ndarray):
        self._layer.forward(np.asarray(x, dtype=self._net.dtype))
        dx, g = self._layer.backward(np.asarray(dy, dtype=self._net.dtype), need_dx=True)
        return dx, {"w": g["w"], "b": g["b"]}

    def get_params(self) -> dict[str, np.ndarray]:
        return {q: self._net.p[f"{self.name}.{q}"].copy() for q in ("w", "b")}

    def set_params(self, params) -> None:
        for q in ("w", "b"):
            key = f"{self.name}.{q}"
            if q not in params:
                raise ValueError(f"layer {self.name}: set_params needs {q!r}")
            v = np.asarray(params[q])
            if v.shape != self._net.p[key].shape:
                raise ValueError(
                    f"layer {self.name}: {key} has shape {self._net.p[key].shape}, got {v.shape}"
                )
            self._net.p[key][...] = v  # in place: the net's layers hold this dict

    from_reference = staticmethod(identity_layout)
    to_reference = staticmethod(identity_layout)


def reference_candidate(spec: NetSpec | None = None, seed: int = 0, name: str | None = None,
                        params: Params | None = None, dtype=np.float64) -> AdaptedCandidate:
    """The reference as a candidate, initialised from `seed` (or from `params`)."""
    spec = spec if spec is not None else paper()
    net = NumpyNet(spec, params if params is not None else init_params(spec, seed), dtype)
    layers = [ReferenceLayer(net, layer.name) for layer in net.layers]
    cand = AdaptedCandidate(name or spec.name, spec, layers, net.loss.value, net.loss.grad)
    # the same net in another dtype; the harness copies the parameters across
    cand.with_dtype = lambda dt: reference_candidate(spec, seed, name, params, dt)
    return cand


def build(seed: int = 0) -> AdaptedCandidate:
    """Built-in `reference`: the paper preset."""
    return reference_candidate(paper(), seed, name="reference")
