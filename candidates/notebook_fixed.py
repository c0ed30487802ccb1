"""Built-in `notebook-fixed`: the seed notebook's network with every backward fault corrected.

Same network and choices as candidates/notebook.py (LiSHT, 4x4 H2 kernels shared over the 8
input maps, the (i + k) % 12 table, biases after the activation in H2, 0/1 targets, the
sqrt(2.4/F) init with the same draws for the same seed) and the same forward arithmetic, in
vectorised NumPy with no dmlearn. The backward passes, the loss derivative and H1's bias
(fault b, a forward fault) differ:

    fault a  H1 dk: the gradient is spread over the PADDED input at stride 2 (i.e. dilated),
             then flipped back because the forward convolves (flipped kernel)
    fault b  H1's forward overwrote its biases; they are now added after the activation,
             as the notebook's H2 does (y = b + f(z)), so db = dy. The one forward change.
    fault c  H2 dk: as (a), summed over the 8 input maps each kernel is shared by
    fault d  H2 db = dy (the bias is added after the activation)
    fault e  H2 dx: each H2 map's contribution goes to the H1 map j it read, spread back
             over the zero-padded input at stride 2 (the dilated transpose) with the kernel
             as stored (no second flip); H1 now also returns its dx
    fault f  dE/dy = 2 (y - t) / (N * 10) for E = mean over patterns and outputs

Notation: x input maps, xp x padded with -1, W[.., r, c, u, v] = xp[.., 2r+u, 2c+v] the
stride-2 windows, kf the flipped kernel (what a true convolution correlates with),
z = sum_uv W kf, f = LiSHT. maps_to is None for every layer (LiSHT; see notebook.py).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from candidates.adapters import AdaptedCandidate
from candidates.notebook import (
    PAD_VALUE,
    PARAM_SHAPES,
    STRIDE,
    WHY_UNMAPPED,
    declared_choices,
    init_notebook_params,
    lisht,
    lisht_grad,
    loss,
    notebook_spec,
    rolled_table,
    targets01,
)

# why no layer maps to the paper's: the notebook's reasons, but H1's biases now reach the output
WHY_UNMAPPED_FIXED = dict(
    WHY_UNMAPPED,
    H1="LiSHT a*tanh(a), not A tanh(S a); same sizes (12x5x5, 12x8x8) but the kernels are "
       "convolution (flipped) kernels and the bias is added after the activation",
)


def _pad(x, p):
    width = [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)]
    return np.pad(x, width, constant_values=PAD_VALUE)


def _windows(xp, k: int, out: int):
    """(..., P, P) -> (..., out, out, k, k) stride-2 windows."""
    w = sliding_window_view(xp, (k, k), axis=(-2, -1))
    return w[..., ::STRIDE, ::STRIDE, :, :][..., :out, :out, :, :]


def _unwindow(dW, size: int):
    """Transpose of _windows: (..., O, O, k, k) -> (..., size, size), summing overlaps."""
    O, k = dW.shape[-4], dW.shape[-1]
    out = np.zeros(dW.shape[:-4] + (size, size))
    span = STRIDE * (O - 1) + 1
    for u in range(k):
        for v in range(k):
            out[..., u:u + span:STRIDE, v:v + span:STRIDE] += dW[..., u, v]
    return out


def _flip(k):
    return k[..., ::-1, ::-1]


class _Layer:
    maps_to = None
    from_reference = to_reference = None

    def __init__(self, name, p, dtype=np.float64):
        self.name, self.why_unmapped = name, WHY_UNMAPPED_FIXED[name]
        self.dt = np.dtype(dtype)
        self.p = {q: np.array(v, dtype=self.dt) for q, v in p.items()}

    def get_params(self):
        return {q: v.copy() for q, v in self.p.items()}

    def set_params(self, params):
        for q, old in self.p.items():
            new = np.array(params[q], dtype=self.dt)
            if new.shape != old.shape:
                raise ValueError(f"layer {self.name}: {q} has shape {old.shape}, got {new.shape}")
            self.p[q] = new


class H1(_Layer):
    """(N, 1, 16, 16) -> (N, 12, 8, 8); y = b + f(conv(x, k)), the bias after f as in H2."""

    def _z(self, x):
        W = _windows(_pad(np.asarray(x, dtype=self.dt)[:, 0], 2), 5, 8)  # (N, 8, 8, 5, 5)
        return W, np.einsum("nrcuv,iuv->nirc", W, _flip(self.p["w"]))  # (N, 12, 8, 8)

    def forward(self, x):
        return self.p["b"] + lisht(self._z(x)[1])  # (N, 12, 8, 8)

    def backward(self, x, dy):
        W, z = self._z(x)
        g = lisht_grad(z) * np.asarray(dy, dtype=self.dt)  # (N, 12, 8, 8)
        dk = _flip(np.einsum("nirc,nrcuv->iuv", g, W))
        dW = np.einsum("nirc,iuv->nrcuv", g, _flip(self.p["w"]))
        dx = _unwindow(dW, 20)[:, None, 2:18, 2:18]  # (N, 1, 16, 16)
        return dx, {"w": dk, "b": np.asarray(dy, dtype=self.dt).sum(axis=0)}


class H2(_Layer):
    """(N, 12, 8, 8) -> (N, 12, 4, 4); y_i = b_i + sum_{j read by i} f(conv(x_j, k_i))."""

    T = rolled_table()[None, :, :, None, None]  # (1, 12 H2 maps i, 12 H1 maps j, 1, 1)

    def _z(self, x):
        W = _windows(_pad(np.asarray(x, dtype=self.dt), 1), 4, 4)  # (N, 12, 4, 4, 4, 4)
        return W, np.einsum("njrcuv,iuv->nijrc", W, _flip(self.p["w"]))  # (N, 12, 12, 4, 4)

    def forward(self, x):
        z = self._z(x)[1]
        return self.p["b"] + (self.T * lisht(z)).sum(axis=2)  # (N, 12, 4, 4)

    def backward(self, x, dy):
        W, z = self._z(x)
        g = self.T * lisht_grad(z) * np.asarray(dy, dtype=self.dt)[:, :, None]  # (N, i, j, 4, 4)
        dk = _flip(np.einsum("nijrc,njrcuv->iuv", g, W))
        dW = np.einsum("nijrc,iuv->njrcuv", g, _flip(self.p["w"]))  # (N, 12, 4, 4, 4, 4)
        dx = _unwindow(dW, 10)[:, :, 1:9, 1:9]  # (N, 12, 8, 8)
        return dx, {"w": dk, "b": np.asarray(dy, dtype=self.dt).sum(axis=0)}


class Dense(_Layer):
    """H3 (N, 12, 4, 4) -> (N, 30) and out (N, 30) -> (N, 10); y = f(x W^T + b^T)."""

    def _a(self, x):
        xf = np.asarray(x, dtype=self.dt).reshape(len(x), -1)  # (N, fan_in), C order
        return xf, xf @ self.p["w"].T + self.p["b"][:, 0]  # (N, units)

    def forward(self, x):
        return lisht(self._a(x)[1])

    def backward(self, x, dy):
        xf, a = self._a(x)
        g = lisht_grad(a) * np.asarray(dy, dtype=self.dt)  # (N, units)
        dx = (g @ self.p["w"]).reshape(np.shape(x))
        return dx, {"w": g.T @ xf, "b": g.sum(axis=0)[:, None]}


def loss_grad(y, labels) -> np.ndarray:
    """dE/dy of E = mean over patterns and the 10 outputs of (t - y)^2."""
    y = np.asarray(y, dtype=np.float64)
    return 2.0 * (y - targets01(labels)) / y.size


def build(seed: int = 0, dtype=np.float64) -> AdaptedCandidate:
    """The fixed network, computing in `dtype` (float64 as the notebook, or float32)."""
    p = init_notebook_params(seed)
    assert {n: (v["w"].shape, v["b"].shape) for n, v in p.items()} == PARAM_SHAPES
    layers = [H1("H1", p["H1"], dtype), H2("H2", p["H2"], dtype), Dense("H3", p["H3"], dtype),
              Dense("out", p["out"], dtype)]
    cand = AdaptedCandidate("notebook-fixed", notebook_spec("notebook-fixed"), layers, loss,
                            loss_grad, declared_choices())
    # the same network in another dtype (same seed; the harness copies parameters across)
    cand.with_dtype = lambda dt: build(seed, dt)
    return cand
