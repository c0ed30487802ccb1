"""The 1989 network in NumPy, with a hand-written backward for each layer.

Notation (see reference/spec.py for sources):
    x (N, 1, 16, 16) -> H1 (N, 12, 8, 8) -> H2 (N, 12, 4, 4) -> H3 (N, 30) -> out (N, 10)
    a      a layer's total input, a = w * x + b   (* is a strided cross-correlation in H1, H2)
    f(a)   = A tanh(S a);  f'(a) = A S (1 - tanh(S a)^2)
    T      H2's connection table, T[i, j] = H2 map i reads H1 map j
    E      the loss, mean over patterns and output units of (out - target)^2
    dE/dq  written `dq` below (dw, db, dx, da, dy)

Convolutions are done by index gathers (im2col) and matrix products, with no Python loop
over maps, kernels or pixels: `_ConvIndex` precomputes, once per geometry, which padded
input pixel each kernel tap reads (forward) and which (output unit, tap) pairs touch each
input pixel (backward, so that the input gradient is a gather and a sum, not a scatter).
Padding is a sentinel column holding the pad value (forward) or zero (backward).
"""

from __future__ import annotations

import numpy as np

from reference.params import LAYERS, Params
from reference.spec import NetSpec


class _ConvIndex:
    """Gather indices for a square, strided, padded 2-D cross-correlation."""

    def __init__(self, size: int, kernel: int, stride: int, pad: int, out_size: int):
        if (size + 2 * pad - kernel) // stride + 1 != out_size:
            raise ValueError(
                f"conv geometry: input {size}, kernel {kernel}, stride {stride}, pad {pad} "
                f"gives {(size + 2 * pad - kernel) // stride + 1} outputs, spec says {out_size}"
            )
        self.size, self.kernel, self.out_size = size, kernel, out_size
        sentinel = size * size
        r = np.arange(out_size)[:, None, None, None] * stride - pad  # (O, 1, 1, 1)
        c = np.arange(out_size)[None, :, None, None] * stride - pad  # (1, O, 1, 1)
        u = np.arange(kernel)[None, None, :, None]
        v = np.arange(kernel)[None, None, None, :]
        rows, cols = r + u, c + v  # (O, O, K, K) input coordinates, padding outside
        inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
        flat = np.where(inside, rows * size + cols, sentinel)
        self.fwd = flat.reshape(out_size * out_size, kernel * kernel)  # (O*O, K*K)

        # backward: for each input pixel, the flat (o, k) slots that read it
        n_slots = out_size * out_size * kernel * kernel
        hits = [[] for _ in range(size * size)]
        for slot, pix in enumerate(self.fwd.ravel()):
            if pix != sentinel:
                hits[pix].append(slot)
        width = max(len(h) for h in hits)
        self.bwd = np.full((size * size, width), n_slots, dtype=np.intp)  # (S*S, <=9)
        for pix, h in enumerate(hits):
            self.bwd[pix, : len(h)] = h


class Activation:
    """f(a) = A tanh(S a), with f'(a) written from the cached tanh."""

    def __init__(self, spec: NetSpec):
        self.A, self.S = spec.act_amplitude, spec.act_slope

    def __call__(self, a):
        t = np.tanh(self.S * a)
        return self.A * t, t

    def grad_from_tanh(self, t):
        return self.A * self.S * (1.0 - t * t)


class ConvLayer:
    """H1 or H2: strided, padded cross-correlation over the maps that T connects, an untied
    bias per unit, then f. Weights are held as (maps_out, reads_per_map, K, K); the
    forward pass scatters them once into a dense (maps_out, maps_in * K*K) matrix whose
    unconnected blocks are zero, so one matrix product does all maps."""

    def __init__(self, name, params, act, table, size, kernel, stride, pad, out_size,
                 pad_value):
        self.name, self.p, self.f = name, params, act
        self.T = np.asarray(table, dtype=bool)  # (maps_out, maps_in)
        self.maps_out, self.maps_in = self.T.shape
        self.idx = _ConvIndex(size, kernel, stride, pad, out_size)
        self.pad_value = pad_value
        self.KK = kernel * kernel

    def _dense_w(self):
        w = self.p[f"{self.name}.w"]
        W = np.zeros((self.maps_out, self.maps_in, self.KK), dtype=w.dtype)
        W[self.T] = w.reshape(-1, self.KK)
        return W.reshape(self.maps_out, self.maps_in * self.KK)

    def forward(self, x):
        N, C, S, _ = x.shape  # (N, maps_in, S, S)
        if (C, S) != (self.maps_in, self.idx.size):
            raise ValueError(
                f"{self.name} expects input (N, {self.maps_in}, {self.idx.size}, "
                f"{self.idx.size}), got {tuple(x.shape)}"
            )
        xe = np.empty((N, C, S * S + 1), dtype=self.p[f"{self.name}.w"].dtype)
        xe[:, :, :-1] = x.reshape(N, C, S * S)
        xe[:, :, -1] = self.pad_value
        P = xe[:, :, self.idx.fwd]  # (N, C, O*O, K*K)
        P = P.transpose(0, 2, 1, 3).reshape(N, -1, C * self.KK)  # (N, O*O, C*K*K)
        W = self._dense_w()  # (M, C*K*K)
        O = self.idx.out_size
        a = (P @ W.T).transpose(0, 2, 1).reshape(N, self.maps_out, O, O)
        a += self.p[f"{self.name}.b"]  # (N, M, O, O)
        y, t = self.f(a)
        self.cache = (P, W, t, x.shape)
        return y  # (N, M, O, O)

    def backward(self, dy, need_dx=True):
        P, W, t, xshape = self.cache
        N, C, S, _ = xshape
        da = dy * self.f.grad_from_tanh(t)  # (N, M, O, O)
        db = da.sum(axis=0)
        da_m = da.reshape(N, self.maps_out, -1)  # (N, M, O*O)
        dW = (da_m.transpose(1, 0, 2).reshape(self.maps_out, -1)
              @ P.reshape(-1, C * self.KK))  # (M, C*K*K)
        dw = dW.reshape(self.maps_out, self.maps_in, self.KK)[self.T]
        dw = dw.reshape(self.p[f"{self.name}.w"].shape)
        dx = None
        if need_dx:
            dP = da_m.transpose(0, 2, 1) @ W  # (N, O*O, C*K*K)
            dP = dP.reshape(N, -1, C, self.KK).transpose(0, 2, 1, 3).reshape(N, C, -1)
            dPe = np.concatenate([dP, np.zeros((N, C, 1), dP.dtype)], axis=2)
            dx = dPe[:, :, self.idx.bwd].sum(axis=3).reshape(N, C, S, S)
        return dx, {"w": dw, "b": db}


class DenseLayer:
    """H3 or out: a = x_flat w^T + b, then f. Input maps are flattened in C order."""

    def __init__(self, name, params, act):
        self.name, self.p, self.f = name, params, act

    def forward(self, x):
        w = self.p[f"{self.name}.w"]
        xf = x.reshape(x.shape[0], -1)  # (N, fan_in)
        if xf.shape[1] != w.shape[1]:
            raise ValueError(
                f"{self.name} expects {w.shape[1]} inputs per pattern, got shape {x.shape}"
            )
        y, t = self.f(xf @ w.T + self.p[f"{self.name}.b"])  # (N, units)
        self.cache = (xf, t, x.shape)
        return y

    def backward(self, dy, need_dx=True):
        xf, t, xshape = self.cache
        da = dy * self.f.grad_from_tanh(t)  # (N, units)
        dw = da.T @ xf
        db = da.sum(axis=0)
        dx = (da @ self.p[f"{self.name}.w"]).reshape(xshape) if need_dx else None
        return dx, {"w": dw, "b": db}


class MSELoss:
    """E = mean over patterns and output units of (y - t)^2, targets +-1 from the spec."""

    def __init__(self, spec: NetSpec):
        self.on, self.off, self.units = spec.target_on, spec.target_off, spec.out_units

    def targets(self, labels, dtype=np.float64):
        labels = np.asarray(labels)
        t = np.full((labels.shape[0], self.units), self.off, dtype=dtype)
        t[np.arange(labels.shape[0]), labels] = self.on
        return t

    def value(self, y, labels):
        return float(np.mean((y - self.targets(labels, y.dtype)) ** 2))

    def grad(self, y, labels):
        return 2.0 * (y - self.targets(labels, y.dtype)) / y.size  # (N, 10)


class NumpyNet:
    """The reference network. Holds its own copy of the parameters, in `dtype`."""

    def __init__(self, spec: NetSpec, params: Params, dtype=np.float64):
        self.spec, self.dtype = spec, np.dtype(dtype)
        self.p = params.arrays(self.dtype)  # its own copy: never an alias of `params`
        f = Activation(spec)
        s = spec
        h1_table = np.ones((s.h1_maps, 1), dtype=bool)
        self.layers = [
            ConvLayer("H1", self.p, f, h1_table, s.input_size, s.h1_kernel, s.h1_stride,
                      s.h1_pad, s.h1_size, s.pad_value),
            ConvLayer("H2", self.p, f, s.h2_table, s.h1_size, s.h2_kernel, s.h2_stride,
                      s.h2_pad, s.h2_size, s.pad_value),
            DenseLayer("H3", self.p, f),
            DenseLayer("out", self.p, f),
        ]
        self.layer = dict(zip(LAYERS, self.layers))
        self.loss = MSELoss(spec)

    # ---- parameters ----
    def get_params(self) -> Params:
        return Params(self.spec, self.p)

    def set_params(self, params: Params) -> None:
        for k, v in params.arrays(self.dtype).items():
            self.p[k][...] = v  # in place: the layers hold this dict

    # ---- whole network ----
    def forward(self, x):
        h = np.asarray(x, dtype=self.dtype)
        if h.ndim == 3:
            h = h[:, None]
        for layer in self.layers:
            h = layer.forward(h)
        return h  # (N, 10)

    def backward(self, dy, need_input_grad=False):
        """Back-propagate dE/d(out). Returns ({param name: grad}, {layer: dE/d(input)})."""
        grads, dxs = {}, {}
        for i, layer in reversed(list(enumerate(self.layers))):
            dx, g = layer.backward(dy, need_dx=(i > 0 or need_input_grad))
            grads[f"{layer.name}.w"], grads[f"{layer.name}.b"] = g["w"], g["b"]
            dxs[layer.name] = dx
            dy = dx
        return grads, dxs

    def loss_and_grads(self, x, labels, need_input_grad=False):
        y = self.forward(x)
        grads, dxs = self.backward(self.loss.grad(y, labels), need_input_grad)
        return self.loss.value(y, labels), grads, dxs

    def sgd_step(self, x, labels, lr):
        """One plain SGD step on a pattern (or a batch); returns the loss before the step."""
        y = self.forward(x)
        E = self.loss.value(y, labels)
        grads, _ = self.backward(self.loss.grad(y, labels))
        for k, g in grads.items():
            self.p[k] -= lr * g
        return E

    def predict(self, x, batch=1024):
        out = [self.forward(x[i:i + batch]) for i in range(0, len(x), batch)]
        return np.concatenate(out, axis=0)
