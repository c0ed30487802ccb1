"""A catalog of real backprop mistakes, each injected into a copy of the NumPy reference.

Every fault is a `Fault(name, description, layer, quantity, cls)`: `cls` replaces ONE piece
of the reference (a layer or the loss) in a NumpyNet, and `build_fault` wraps that net as a
protocol candidate (candidates/reference_candidate.py), so the harness checks it exactly as
it checks a user's code. `layer, quantity` is what the fault breaks first: the pair the
harness must name as an origin (harness/selftest/runner.py states the localization rule).

To keep each fault to a few lines, `StepConv` and `StepDense` restate the reference's
ConvLayer and DenseLayer as small overridable steps (patches, pre-activation, activation,
da, dw, db, dx). With no override they compute the very same float operations as
reference/numpy_net.py; the self-test checks that they pass (the `control` entry).

Notation as in reference/numpy_net.py: a = w * x + b, y = f(a) = A tanh(S a), t = tanh(S a),
da = dE/da, P the im2col patches (N, O*O, C*K*K), W the dense (M, C*K*K) kernel matrix,
T the 8-of-12 table, xf the flattened input of a dense layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.numpy_net import ConvLayer, DenseLayer, MSELoss, NumpyNet

QUANTITIES = ("activation", "weight_grad", "bias_grad", "input_grad", "loss_grad")
LAYER_NAMES = ("H1", "H2", "H3", "out", "loss")


# ---------------------------------------------------------------- reference, in steps

def window_index(size, kernel, stride, pad, out, shift=0):
    """(O*O, K*K) flat input index read by each (output unit, tap); size*size = outside.
    `shift` moves every window by that many pixels (0 for the paper's geometry)."""
    r = np.arange(out)[:, None, None, None] * stride - pad + shift  # (O, 1, 1, 1)
    c = np.arange(out)[None, :, None, None] * stride - pad + shift
    u = np.arange(kernel)[None, None, :, None]
    v = np.arange(kernel)[None, None, None, :]
    rows, cols = r + u, c + v  # (O, O, K, K)
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return np.where(inside, rows * size + cols, size * size).reshape(out * out, -1)


class StepConv(ConvLayer):
    """The reference ConvLayer split into steps; each fault overrides one."""

    def _patches(self, x, fill, index):
        N, C, S, _ = x.shape
        xe = np.empty((N, C, S * S + 1), dtype=self.p[f"{self.name}.w"].dtype)
        xe[:, :, :-1] = x.reshape(N, C, S * S)
        xe[:, :, -1] = fill
        P = xe[:, :, index]  # (N, C, O*O, K*K)
        return P.transpose(0, 2, 1, 3).reshape(N, -1, C * self.KK)  # (N, O*O, C*K*K)

    def _geometry(self, stride=None, pad=None, shift=0):
        """Window index of this layer's geometry, optionally with another stride/pad/shift."""
        g = self.geom
        return window_index(g["size"], g["kernel"], g["stride"] if stride is None else stride,
                            g["pad"] if pad is None else pad, g["out"], shift)

    def _bias(self):
        return self.p[f"{self.name}.b"]

    def _act(self, a):
        return self.f(a)

    def forward(self, x):
        N = x.shape[0]
        if tuple(x.shape[1:3]) != (self.maps_in, self.idx.size):
            raise ValueError(f"{self.name} expects (N, {self.maps_in}, {self.idx.size}, "
                             f"{self.idx.size}), got {tuple(x.shape)}")
        P = self._patches(x, self.pad_value, self.idx.fwd)  # (N, O*O, C*K*K)
        W = self._dense_w()  # (M, C*K*K)
        O = self.idx.out_size
        a = (P @ W.T).transpose(0, 2, 1).reshape(N, self.maps_out, O, O)
        a += self._bias()  # (N, M, O, O)
        y, t = self._act(a)
        self.cache = (P, W, t, x.shape)
        self.x_in = np.array(x, copy=True)  # for faults that gather patches again
        return y

    def _da(self, dy, t):
        return dy * self.f.grad_from_tanh(t)

    def _db(self, da, t):
        return da.sum(axis=0)

    def _dw(self, da_m, P):
        dW = da_m.transpose(1, 0, 2).reshape(self.maps_out, -1) @ P.reshape(-1, P.shape[2])
        dw = dW.reshape(self.maps_out, self.maps_in, self.KK)[self.T]
        return dw.reshape(self.p[f"{self.name}.w"].shape)

    def _dx(self, da_m, W, xshape):
        N, C, S, _ = xshape
        dP = da_m.transpose(0, 2, 1) @ W  # (N, O*O, C*K*K)
        dP = dP.reshape(N, -1, C, self.KK).transpose(0, 2, 1, 3).reshape(N, C, -1)
        dPe = np.concatenate([dP, np.zeros((N, C, 1), dP.dtype)], axis=2)
        return dPe[:, :, self.idx.bwd].sum(axis=3).reshape(N, C, S, S)

    def backward(self, dy, need_dx=True):
        P, W, t, xshape = self.cache
        da = self._da(dy, t)  # (N, M, O, O)
        db = self._db(da, t)
        da_m = da.reshape(xshape[0], self.maps_out, -1)  # (N, M, O*O)
        dw = self._dw(da_m, P)
        dx = self._dx(da_m, W, xshape) if need_dx else None
        return dx, {"w": dw, "b": db}


class StepDense(DenseLayer):
    """The reference DenseLayer split into steps; each fault overrides one."""

    def _pre(self, xf, w):
        return xf @ w.T + self.p[f"{self.name}.b"]

    def _act(self, a):
        return self.f(a)

    def forward(self, x):
        w = self.p[f"{self.name}.w"]
        xf = x.reshape(x.shape[0], -1)  # (N, fan_in)
        y, t = self._act(self._pre(xf, w))  # (N, units)
        self.cache = (xf, t, x.shape)
        return y

    def _da(self, dy, t):
        return dy * self.f.grad_from_tanh(t)

    def _dw(self, da, xf):
        return da.T @ xf

    def _db(self, da, t):
        return da.sum(axis=0)

    def _dx(self, da, xshape):
        return (da @ self.p[f"{self.name}.w"]).reshape(xshape)

    def backward(self, dy, need_dx=True):
        xf, t, xshape = self.cache
        da = self._da(dy, t)  # (N, units)
        dx = self._dx(da, xshape) if need_dx else None
        return dx, {"w": self._dw(da, xf), "b": self._db(da, t)}


# ---------------------------------------------------------------- the faults, one each

class ConvWgradNoDilate(StepConv):
    def _dw(self, da_m, P):  # correlates x with da at stride 1: da is not dilated by 2
        return super()._dw(da_m, self._patches(self.x_in, self.pad_value,
                                               self._geometry(stride=1)))


class ConvWgradFlipped(StepConv):
    def _dw(self, da_m, P):  # flips the kernel gradient (a convolution's rule, flipped twice)
        return super()._dw(da_m, P)[..., ::-1, ::-1]


class ConvWgradNoPad(StepConv):
    def _dw(self, da_m, P):  # windows start at pixel 0 instead of -pad, outside reads 0
        return super()._dw(da_m, self._patches(self.x_in, 0.0, self._geometry(pad=0)))


class ConvWgradFillZero(StepConv):
    def _dw(self, da_m, P):  # the border is padded with 0 in backward, -1 in forward
        return super()._dw(da_m, self._patches(self.x_in, 0.0, self.idx.fwd))


class ConvWgradWindowOffByOne(StepConv):
    def _dw(self, da_m, P):  # backward's windows start one pixel later than forward's
        return super()._dw(da_m, self._patches(self.x_in, self.pad_value,
                                               self._geometry(shift=1)))


class ConvPadZeroForward(StepConv):
    def _patches(self, x, fill, index):  # pads the input with 0 instead of the spec's -1
        return super()._patches(x, 0.0, index)


class ConvWindowOffByOne(StepConv):
    def _patches(self, x, fill, index):  # output unit r reads from 2r - pad + 1
        return super()._patches(x, fill, self._geometry(shift=1))


class ConvBiasSharedForward(StepConv):
    def _bias(self):  # untied biases used as one bias per map (the map's first unit)
        b = self.p[f"{self.name}.b"]
        return np.broadcast_to(b[:, :1, :1], b.shape)


class ConvBiasSharedBackward(StepConv):
    def _db(self, da, t):  # each unit gets its whole map's gradient, as a shared bias would
        return np.broadcast_to(da.sum(axis=(0, 2, 3))[:, None, None], da.shape[1:]).copy()


class ConvBiasNeverAdded(StepConv):
    def _bias(self):  # the bias never reaches a (backward still returns sum(da))
        return 0.0


class ConvDerivNoAmplitude(StepConv):
    def _da(self, dy, t):  # f'(a) = S (1 - t^2): the 1.7159 is missing
        return dy * self.f.S * (1.0 - t * t)


class ConvDxKernelNotFlipped(StepConv):
    def _dx(self, da_m, W, xshape):  # the input gradient uses the kernel taps reversed
        K = int(round(self.KK ** 0.5))
        Wr = W.reshape(self.maps_out, self.maps_in, K, K)[..., ::-1, ::-1]
        return super()._dx(da_m, Wr.reshape(W.shape), xshape)


class ConvDxWrongMap(StepConv):
    def _dx(self, da_m, W, xshape):  # what belongs to input map j is added to map j + 1
        return np.roll(super()._dx(da_m, W, xshape), 1, axis=1)


class ConvTableShifted(StepConv):
    """backward reads the 8-of-12 table shifted by one input map (weight grad and dx)"""

    def _table(self):  # backward reads the 8-of-12 table shifted by one input map
        return np.roll(self.T, 1, axis=1)

    def _dw(self, da_m, P):
        dW = da_m.transpose(1, 0, 2).reshape(self.maps_out, -1) @ P.reshape(-1, P.shape[2])
        dw = dW.reshape(self.maps_out, self.maps_in, self.KK)[self._table()]
        return dw.reshape(self.p[f"{self.name}.w"].shape)

    def _dx(self, da_m, W, xshape):
        w = self.p[f"{self.name}.w"]
        Ws = np.zeros((self.maps_out, self.maps_in, self.KK), dtype=w.dtype)
        Ws[self._table()] = w.reshape(-1, self.KK)
        return super()._dx(da_m, Ws.reshape(W.shape), xshape)


class ConvTableIgnoredBackward(StepConv):
    """the 8-of-12 table is ignored in backward: gradient leaks into unconnected maps"""

    def _dx(self, da_m, W, xshape):
        # a dense 12x12 kernel bank masked by T in forward only: the unconnected (stale,
        # initialised) kernels still carry gradient into maps the unit never read
        stale = np.random.default_rng(0).uniform(-0.05, 0.05, W.shape).astype(W.dtype)
        mask = np.repeat(self.T.reshape(self.maps_out, self.maps_in, 1), self.KK, axis=2)
        bank = np.where(mask.reshape(W.shape), W, stale)
        return super()._dx(da_m, bank, xshape)


class DenseFloat32Forward(StepDense):
    def _pre(self, xf, w):  # sums in float32 while float64 is promised
        a = xf.astype(np.float32) @ w.T.astype(np.float32)
        return a.astype(xf.dtype) + self.p[f"{self.name}.b"]


class DenseFloat32Wgrad(StepDense):
    def _dw(self, da, xf):  # the weight gradient accumulates in float32
        return (da.astype(np.float32).T @ xf.astype(np.float32)).astype(da.dtype)


class DenseWgradTransposed(StepDense):
    def _dw(self, da, xf):  # computes dE/dw^T (fan_in, units), then reshapes to w's shape
        return (xf.T @ da).reshape(self.p[f"{self.name}.w"].shape)


class DenseAliasedCache(StepDense):
    def _act(self, a):  # y is scaled in place, and y IS the cached tanh: t becomes A t
        t = np.tanh(self.f.S * a)
        y = t
        y *= self.f.A
        return y, t


class DenseDerivTwiceOnBias(StepDense):
    def _db(self, da, t):  # da already holds f'(a); it is multiplied in again
        return (da * self.f.grad_from_tanh(t)).sum(axis=0)


class DenseDerivNoSlope(StepDense):
    def _da(self, dy, t):  # f'(a) = A (1 - t^2): the 2/3 is missing
        return dy * self.f.A * (1.0 - t * t)


class DenseFlattenOrder(StepDense):
    def _dx(self, da, xshape):  # forward flattens (map, row, col), backward (row, col, map)
        N, C, S, _ = xshape
        return (da @ self.p[f"{self.name}.w"]).reshape(N, S, S, C).transpose(0, 3, 1, 2)


class DenseBiasAfterSquash(StepDense):
    """y = f(w x) + b instead of f(w x + b)"""

    def _pre(self, xf, w):
        return xf @ w.T

    def _act(self, a):  # y = f(w x) + b instead of f(w x + b)
        y, t = self.f(a)
        return y + self.p[f"{self.name}.b"], t


class DenseDerivAtOutput(StepDense):
    def _da(self, dy, t):  # f' evaluated at the output y = A t instead of at a
        return dy * self.f.grad_from_tanh(np.tanh(self.f.S * self.f.A * t))


class DenseUpdateBeforeDx(StepDense):
    """an SGD step is taken on w and b, then dx is computed from the NEW weights"""

    lr = 0.01  # the paper preset's learning rate

    def backward(self, dy, need_dx=True):  # SGD step on w, then dx from the NEW weights
        xf, t, xshape = self.cache
        da = self._da(dy, t)
        dw, db = self._dw(da, xf), self._db(da, t)
        self.p[f"{self.name}.w"] -= self.lr * dw
        self.p[f"{self.name}.b"] -= self.lr * db
        return (self._dx(da, xshape) if need_dx else None), {"w": dw, "b": db}


class LossSum(MSELoss):
    def grad(self, y, labels):  # dE/dy of a SUM of squares while E is their mean
        return 2.0 * (y - self.targets(labels, y.dtype))


class LossSignFlipped(MSELoss):
    def grad(self, y, labels):  # (t - y) instead of (y - t)
        return 2.0 * (self.targets(labels, y.dtype) - y) / y.size


class LossSumBoth(MSELoss):
    """E and dE/dy of a SUM of squared errors where the spec declares their mean: the two
    agree with each other, so only the comparison with the reference can see it."""

    def value(self, y, labels):
        return float(np.sum((y - self.targets(labels, y.dtype)) ** 2))

    def grad(self, y, labels):
        return 2.0 * (y - self.targets(labels, y.dtype))


# ---------------------------------------------------------------- the catalog

@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    layer: str  # H1 | H2 | H3 | out | loss
    quantity: str  # activation | weight_grad | bias_grad | input_grad | loss_grad
    cls: type  # replaces the reference's layer `layer` (or its loss)


def _f(name, layer, quantity, cls):
    return Fault(name, (cls.__doc__ or _first_comment(cls)).strip(), layer, quantity, cls)


def _first_comment(cls) -> str:
    import inspect

    for line in inspect.getsource(cls).splitlines():
        if "#" in line:
            return line.split("#", 1)[1]
    return cls.__name__


CATALOG: tuple[Fault, ...] = (
    _f("h1_pad_zero_forward", "H1", "activation", ConvPadZeroForward),
    _f("h1_bias_shared_forward", "H1", "activation", ConvBiasSharedForward),
    _f("h1_wgrad_not_dilated", "H1", "weight_grad", ConvWgradNoDilate),
    _f("h1_wgrad_kernel_flipped_twice", "H1", "weight_grad", ConvWgradFlipped),
    _f("h1_wgrad_padding_missing", "H1", "weight_grad", ConvWgradNoPad),
    _f("h1_wgrad_window_off_by_one", "H1", "weight_grad", ConvWgradWindowOffByOne),
    _f("h1_bias_never_added", "H1", "bias_grad", ConvBiasNeverAdded),
    _f("h1_deriv_missing_1.7159", "H1", "bias_grad", ConvDerivNoAmplitude),
    _f("h1_dx_kernel_not_flipped", "H1", "input_grad", ConvDxKernelNotFlipped),
    _f("h2_window_off_by_one", "H2", "activation", ConvWindowOffByOne),
    _f("h2_wgrad_not_dilated", "H2", "weight_grad", ConvWgradNoDilate),
    _f("h2_wgrad_pad_fill_zero", "H2", "weight_grad", ConvWgradFillZero),
    _f("h2_table_shifted_in_backward", "H2", "weight_grad", ConvTableShifted),
    _f("h2_bias_shared_backward", "H2", "bias_grad", ConvBiasSharedBackward),
    _f("h2_dx_kernel_not_flipped", "H2", "input_grad", ConvDxKernelNotFlipped),
    _f("h2_dx_wrong_map_index", "H2", "input_grad", ConvDxWrongMap),
    _f("h2_table_ignored_in_backward", "H2", "input_grad", ConvTableIgnoredBackward),
    _f("h3_float32_forward", "H3", "activation", DenseFloat32Forward),
    _f("h3_wgrad_transposed", "H3", "weight_grad", DenseWgradTransposed),
    _f("h3_cached_tanh_aliased", "H3", "weight_grad", DenseAliasedCache),
    _f("h3_deriv_twice_on_bias", "H3", "bias_grad", DenseDerivTwiceOnBias),
    _f("h3_deriv_missing_2/3", "H3", "input_grad", DenseDerivNoSlope),
    _f("h3_flatten_order_backward", "H3", "input_grad", DenseFlattenOrder),
    _f("out_bias_after_squash", "out", "activation", DenseBiasAfterSquash),
    _f("out_wgrad_float32", "out", "weight_grad", DenseFloat32Wgrad),
    _f("out_deriv_at_output", "out", "bias_grad", DenseDerivAtOutput),
    _f("out_update_before_dx", "out", "input_grad", DenseUpdateBeforeDx),
    _f("loss_grad_sum_not_mean", "loss", "loss_grad", LossSum),
    _f("loss_grad_sign_flipped", "loss", "loss_grad", LossSignFlipped),
    _f("loss_sum_in_value_and_grad", "loss", "activation", LossSumBoth),
)

# The reference in steps with no fault: must pass every check (a control, not a fault).
CONTROLS: tuple[Fault, ...] = (
    Fault("control_steps", "StepConv/StepDense with no override (the reference)", "none",
          "none", type(None)),
)


def by_name(name: str) -> Fault:
    for f in CATALOG + CONTROLS:
        if f.name == name:
            return f
    raise ValueError(f"unknown fault {name!r}; known: {[f.name for f in CATALOG]}")


def _swap(obj, cls):
    """A `cls` instance holding `obj`'s state (same arrays, same parameter dict)."""
    new = cls.__new__(cls)
    new.__dict__.update(obj.__dict__)
    return new


def faulty_net(fault: Fault, spec, params, dtype=np.float64) -> NumpyNet:
    """A NumpyNet whose every layer is a StepConv/StepDense and whose `fault.layer` piece
    is `fault.cls` (no piece for a control)."""
    net = NumpyNet(spec, params, dtype)
    s = spec
    geoms = {"H1": (s.input_size, s.h1_kernel, s.h1_stride, s.h1_pad, s.h1_size),
             "H2": (s.h1_size, s.h2_kernel, s.h2_stride, s.h2_pad, s.h2_size)}
    for i, layer in enumerate(net.layers):
        base = StepConv if isinstance(layer, ConvLayer) else StepDense
        cls = fault.cls if fault.layer == layer.name else base
        if not issubclass(cls, base):
            raise ValueError(f"fault {fault.name}: {cls.__name__} cannot replace layer "
                             f"{layer.name} ({type(layer).__name__})")
        new = _swap(layer, cls)
        if base is StepConv:
            new.geom = dict(zip(("size", "kernel", "stride", "pad", "out"),
                                geoms[layer.name]))
        net.layers[i] = new
    net.layer = {layer.name: layer for layer in net.layers}
    if fault.layer == "loss":
        net.loss = _swap(net.loss, fault.cls)
    return net


def build_fault(fault: Fault, spec, seed: int = 0):
    """The faulty net as a protocol candidate (parameters from `seed`; the harness sets
    them from its own shared parameters anyway)."""
    from candidates.adapters import AdaptedCandidate
    from candidates.reference_candidate import ReferenceLayer
    from reference.params import init_params

    net = faulty_net(fault, spec, init_params(spec, seed))
    layers = [ReferenceLayer(net, layer.name) for layer in net.layers]
    return AdaptedCandidate(f"fault:{fault.name}", spec, layers, net.loss.value,
                            net.loss.grad)
