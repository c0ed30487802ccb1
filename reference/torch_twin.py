"""The 1989 network in PyTorch, with every gradient from torch.autograd: the NumPy twin.

It is built from the same NetSpec and loads the same Params as reference/numpy_net.py, but
shares no code with it beyond the spec and the Params shapes: padding is F.pad, the
convolution is F.conv2d, and no backward is written by hand. Agreement between the two is
therefore evidence that the hand-written NumPy backward is right.

Notation (see reference/spec.py for sources; identical to reference/numpy_net.py):
    x (N, 1, 16, 16) -> H1 (N, 12, 8, 8) -> H2 (N, 12, 4, 4) -> H3 (N, 30) -> out (N, 10)
    a      a layer's total input, a = w * x + b   (* is a strided cross-correlation in H1, H2)
    f(a)   = A tanh(S a);  f'(a) comes from autograd, never written here
    T      H2's connection table, T[i, j] = H2 map i reads H1 map j
    E      the loss, mean over patterns and output units of (out - target)^2
    dE/dq  written `dq` below (dw, db, dx, dy)

Layout of the shape tags: N patterns, C = maps_in, M = maps_out, S input side, O output
side, K kernel side, p padding. The convolution weight is the dense (M, C, K, K) kernel
that F.conv2d expects: H2.w (12, 8, 5, 5) is placed into the 8 blocks T connects and the
other 4 blocks per map are zero; autograd carries dE/dW back to H2.w through that gather,
so the zero blocks never receive a gradient.

Parameters are held BY VALUE: `TorchNet` allocates its own leaf tensors from the spec's
shapes and copies the Params into them (`_NAME_MAP`, one shape check per tensor), so no
twin tensor ever shares memory with a Params or with a NumpyNet.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from reference.params import LAYERS, Params, param_shapes
from reference.spec import NetSpec

# Params name -> (twin layer, attribute of that layer holding the tensor). Loading and
# get_params go through this map only, so the correspondence is written exactly once.
_NAME_MAP: dict[str, tuple[str, str]] = {
    "H1.w": ("H1", "w"),  # (12, 1, 5, 5)
    "H1.b": ("H1", "b"),  # (12, 8, 8)
    "H2.w": ("H2", "w"),  # (12, 8, 5, 5)  -> dense (12, 12, 5, 5) inside the layer
    "H2.b": ("H2", "b"),  # (12, 4, 4)
    "H3.w": ("H3", "w"),  # (30, 192)
    "H3.b": ("H3", "b"),  # (30,)
    "out.w": ("out", "w"),  # (10, 30)
    "out.b": ("out", "b"),  # (10,)
}

_DTYPES = {
    torch.float64: torch.float64, torch.float32: torch.float32,
    np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32,
    "float64": torch.float64, "float32": torch.float32,
}


def _torch_dtype(dtype) -> torch.dtype:
    key = dtype if isinstance(dtype, (torch.dtype, str)) else np.dtype(dtype)
    if key not in _DTYPES:
        raise ValueError(f"TorchNet: dtype must be float64 or float32, got {dtype!r}")
    return _DTYPES[key]


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """A fresh numpy copy (never a view on a tensor the twin keeps)."""
    return t.detach().cpu().numpy().copy()


class _Activation:
    """f(a) = A tanh(S a); autograd differentiates it."""

    def __init__(self, spec: NetSpec):
        self.A, self.S = spec.act_amplitude, spec.act_slope

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        return self.A * torch.tanh(self.S * a)


class _TwinLayer:
    """Shared numpy-facing API; subclasses define `w`, `b` and `forward_t`."""

    name: str
    w: torch.Tensor
    b: torch.Tensor

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.maps_to, self.dtype = name, name, dtype

    def _input(self, x, requires_grad=False) -> torch.Tensor:
        t = torch.tensor(np.array(x, copy=True), dtype=self.dtype)
        return t.requires_grad_(requires_grad)

    def forward(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return _to_numpy(self.forward_t(self._input(x)))

    def backward(self, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, dict]:
        """(dx, {"w": dw, "b": db}) of the scalar (y * dy).sum(), all by autograd."""
        xt = self._input(x, requires_grad=True)
        with torch.enable_grad():
            y = self.forward_t(xt)
            dyt = torch.tensor(np.array(dy, copy=True), dtype=self.dtype)
            if dyt.shape != y.shape:
                raise ValueError(
                    f"{self.name}: dy must have the output's shape {tuple(y.shape)}, "
                    f"got {tuple(dyt.shape)}"
                )
            dx, dw, db = torch.autograd.grad((y * dyt).sum(), [xt, self.w, self.b])
        return _to_numpy(dx), {"w": _to_numpy(dw), "b": _to_numpy(db)}

    # the candidate protocol's per-layer parameter access, in the reference layout
    def get_params(self) -> dict[str, np.ndarray]:
        return {"w": _to_numpy(self.w), "b": _to_numpy(self.b)}

    def set_params(self, params: Mapping[str, np.ndarray]) -> None:
        for role in ("w", "b"):
            _copy_into(getattr(self, role), params[role], f"{self.name}.{role}")


def _copy_into(dst: torch.Tensor, src, name: str) -> None:
    """Copy `src` by value into the leaf tensor `dst`, after a shape check."""
    a = np.array(src, copy=True)
    if a.shape != tuple(dst.shape):
        raise ValueError(f"TorchNet parameter {name}: expected shape {tuple(dst.shape)}, "
                         f"got {a.shape}")
    with torch.no_grad():
        dst.copy_(torch.tensor(a, dtype=dst.dtype))


class TwinConv(_TwinLayer):
    """H1 or H2: pad with the pad value, dense-kernel F.conv2d with stride, untied bias, f."""

    def __init__(self, name, w_shape, b_shape, act, table, size, kernel, stride, pad,
                 out_size, pad_value, dtype):
        super().__init__(name, dtype)
        if (size + 2 * pad - kernel) // stride + 1 != out_size:
            raise ValueError(
                f"{name} conv geometry: input {size}, kernel {kernel}, stride {stride}, pad "
                f"{pad} gives {(size + 2 * pad - kernel) // stride + 1} outputs, spec says "
                f"{out_size}"
            )
        self.f, self.size, self.kernel = act, size, kernel
        self.stride, self.pad, self.pad_value = stride, pad, pad_value
        self.T = np.asarray(table, dtype=bool)  # (maps_out, maps_in)
        self.maps_out, self.maps_in = self.T.shape
        # (map_out, map_in) of each connected block in C order: the order of w's rows
        self._blocks = tuple(torch.as_tensor(i) for i in np.nonzero(self.T))
        self.w = torch.zeros(w_shape, dtype=dtype, requires_grad=True)
        self.b = torch.zeros(b_shape, dtype=dtype, requires_grad=True)

    def dense_w(self) -> torch.Tensor:
        K = self.kernel
        blocks = self.w.reshape(-1, K, K)  # (M * reads_per_map, K, K)
        W = self.w.new_zeros(self.maps_out, self.maps_in, K, K)
        return W.index_put(self._blocks, blocks)  # (M, C, K, K), zero where T is False

    def forward_t(self, x: torch.Tensor) -> torch.Tensor:
        N, C, S, _ = x.shape  # (N, maps_in, S, S)
        if (C, S, x.shape[3]) != (self.maps_in, self.size, self.size):
            raise ValueError(
                f"{self.name} expects input (N, {self.maps_in}, {self.size}, "
                f"{self.size}), got {tuple(x.shape)}"
            )
        p = self.pad
        xp = F.pad(x, (p, p, p, p), value=self.pad_value)  # (N, C, S+2p, S+2p)
        a = F.conv2d(xp, self.dense_w(), stride=self.stride) + self.b  # (N, M, O, O)
        return self.f(a)  # (N, M, O, O)


class TwinDense(_TwinLayer):
    """H3 or out: a = x_flat w^T + b, then f. Input maps are flattened in C order."""

    def __init__(self, name, w_shape, b_shape, act, dtype):
        super().__init__(name, dtype)
        self.f = act
        self.w = torch.zeros(w_shape, dtype=dtype, requires_grad=True)
        self.b = torch.zeros(b_shape, dtype=dtype, requires_grad=True)

    def forward_t(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.reshape(x.shape[0], -1)  # (N, fan_in)
        if xf.shape[1] != self.w.shape[1]:
            raise ValueError(
                f"{self.name} expects {self.w.shape[1]} inputs per pattern, got shape "
                f"{tuple(x.shape)}"
            )
        return self.f(xf @ self.w.T + self.b)  # (N, units)


class TorchNet:
    """The autograd twin of NumpyNet. Holds its own copy of the parameters, in `dtype`."""

    def __init__(self, spec: NetSpec, params: Mapping[str, np.ndarray],
                 dtype=torch.float64):
        self.spec, self.dtype = spec, _torch_dtype(dtype)
        self.name = "torch_twin"
        s, dt, shapes = spec, self.dtype, param_shapes(spec)
        f = _Activation(spec)
        h1_table = np.ones((s.h1_maps, 1), dtype=bool)
        self.layers = [
            TwinConv("H1", shapes["H1.w"], shapes["H1.b"], f, h1_table, s.input_size,
                     s.h1_kernel, s.h1_stride, s.h1_pad, s.h1_size, s.pad_value, dt),
            TwinConv("H2", shapes["H2.w"], shapes["H2.b"], f, s.h2_table, s.h1_size,
                     s.h2_kernel, s.h2_stride, s.h2_pad, s.h2_size, s.pad_value, dt),
            TwinDense("H3", shapes["H3.w"], shapes["H3.b"], f, dt),
            TwinDense("out", shapes["out.w"], shapes["out.b"], f, dt),
        ]
        self.layer = dict(zip(LAYERS, self.layers))
        self.set_params(params)

    # ---- parameters ----
    def tensor(self, name: str) -> torch.Tensor:
        """The twin's own leaf tensor for a Params name (e.g. "H2.w")."""
        if name not in _NAME_MAP:
            raise ValueError(f"TorchNet: unknown parameter {name!r}; names: {list(_NAME_MAP)}")
        layer, attr = _NAME_MAP[name]
        return getattr(self.layer[layer], attr)

    def set_params(self, params: Mapping[str, np.ndarray]) -> None:
        """Copy every named array by value into the twin's tensors (shape-checked)."""
        unknown = sorted(set(params) - set(_NAME_MAP))
        missing = sorted(set(_NAME_MAP) - set(params))
        if unknown or missing:
            raise ValueError(f"TorchNet parameters: missing {missing}, unexpected {unknown}")
        for name in _NAME_MAP:
            _copy_into(self.tensor(name), params[name], name)

    def get_params(self) -> Params:
        return Params(self.spec, {name: _to_numpy(self.tensor(name)) for name in _NAME_MAP})

    # ---- whole network ----
    def _input(self, x) -> torch.Tensor:
        h = torch.tensor(np.array(x, copy=True), dtype=self.dtype)
        return h[:, None] if h.ndim == 3 else h  # (N, 1, 16, 16)

    def _forward_t(self, h: torch.Tensor) -> list[torch.Tensor]:
        """[x, H1, H2, H3, out]: each layer's input, then the network's output."""
        hs = [h]
        for layer in self.layers:
            hs.append(layer.forward_t(hs[-1]))
        return hs

    def _targets(self, labels, like: torch.Tensor) -> torch.Tensor:
        labels = np.asarray(labels)
        units = self.spec.out_units
        if labels.shape != (like.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"TorchNet: labels must be {like.shape[0]} integers, got "
                             f"shape {labels.shape} dtype {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= units):
            raise ValueError(f"TorchNet: labels must lie in [0, {units}), got "
                             f"[{labels.min()}, {labels.max()}]")
        t = torch.full((like.shape[0], units), self.spec.target_off, dtype=self.dtype)
        t[torch.arange(like.shape[0]), torch.as_tensor(labels, dtype=torch.long)] = (
            self.spec.target_on)
        return t  # (N, 10)

    def _loss_t(self, y: torch.Tensor, labels) -> torch.Tensor:
        return ((y - self._targets(labels, y)) ** 2).mean()

    def forward(self, x) -> np.ndarray:
        with torch.no_grad():
            return _to_numpy(self._forward_t(self._input(x))[-1])  # (N, 10)

    def loss_and_grads(self, x, labels, need_input_grad=True):
        """(E, {param name: dE/dparam}, {layer: dE/d(layer input)}), all by autograd.

        As NumpyNet.loss_and_grads: with need_input_grad=False the "H1" entry is None.
        """
        h = self._input(x).requires_grad_(need_input_grad)
        with torch.enable_grad():
            hs = self._forward_t(h)
            E = self._loss_t(hs[-1], labels)
            inputs = hs[:-1] if need_input_grad else hs[1:-1]
            names = list(_NAME_MAP)
            g = torch.autograd.grad(E, [self.tensor(n) for n in names] + inputs)
        grads = {n: _to_numpy(gi) for n, gi in zip(names, g)}
        dxs = [_to_numpy(gi) for gi in g[len(names):]]
        if not need_input_grad:
            dxs = [None] + dxs
        return E.item(), grads, dict(zip(LAYERS, dxs))

    def sgd_step(self, x, labels, lr) -> float:
        """One plain SGD step on a pattern (or a batch); returns the loss before the step."""
        with torch.enable_grad():
            E = self._loss_t(self._forward_t(self._input(x))[-1], labels)
            ps = [self.tensor(n) for n in _NAME_MAP]
            g = torch.autograd.grad(E, ps)
        with torch.no_grad():
            for p, gi in zip(ps, g):
                p.sub_(lr * gi)
        return E.item()

    def predict(self, x, batch=1024) -> np.ndarray:
        out = [self.forward(x[i:i + batch]) for i in range(0, len(x), batch)]
        return np.concatenate(out, axis=0)

    # ---- the candidate protocol's loss API ----
    def loss(self, y: np.ndarray, labels) -> float:
        yt = torch.tensor(np.array(y, copy=True), dtype=self.dtype)
        return float(self._loss_t(yt, labels))

    def loss_grad(self, y: np.ndarray, labels) -> np.ndarray:
        yt = torch.tensor(np.array(y, copy=True), dtype=self.dtype, requires_grad=True)
        with torch.enable_grad():
            (dy,) = torch.autograd.grad(self._loss_t(yt, labels), [yt])
        return _to_numpy(dy)  # (N, 10)
