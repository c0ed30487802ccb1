"""Adapters that turn common from-scratch code into protocol layers (candidates/protocol.py).

    Layout               one pattern as the user's code holds it, e.g. (30, 1) columns, versus
                         the protocol's batch-first layout, e.g. (N, 30)
    InPlaceUpdateLayer   a layer object whose backward(dy, learning_rate) updates its weights
                         in place and returns only dx (the usual tutorial style)
    FunctionalNet        pure per-layer functions forward(params, x) / backward(params, x, dy)
    TorchModuleLayer     a torch.nn.Module per layer, gradients by autograd;
                         `torch_module_candidate` builds a whole candidate from one module
    AdaptedCandidate     the network: name, spec, layers, loss, loss_grad (+ declared choices)

Gradients returned by every adapter are sums over the patterns of a batch, as the reference's
layers return them; the loss's own normalisation lives in loss_grad.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from reference.spec import NetSpec, paper

LAYER_NAMES = ("H1", "H2", "H3", "out")


def protocol_shapes(spec: NetSpec | None = None) -> dict[str, tuple[tuple, tuple]]:
    """Per layer, (input shape, output shape) of one pattern in the protocol, batch excluded."""
    s = spec if spec is not None else paper()
    h1 = (s.h1_maps, s.h1_size, s.h1_size)
    h2 = (s.h2_maps, s.h2_size, s.h2_size)
    return {
        "H1": ((1, s.input_size, s.input_size), h1),
        "H2": (h1, h2),
        "H3": (h2, (s.h3_units,)),
        "out": ((s.h3_units,), (s.out_units,)),
    }


@dataclass(frozen=True)
class Layout:
    """One pattern in the user's shape versus the protocol's (batch excluded).

    The conversion is a reshape, so the two must hold their elements in the same C order:
    (30, 1) columns <-> (30,), (1, 16, 16) <-> (1, 16, 16). `where` names the layer and side
    in error messages.
    """

    user: tuple[int, ...]
    proto: tuple[int, ...]
    where: str = "layer"

    def __post_init__(self) -> None:
        if int(np.prod(self.user)) != int(np.prod(self.proto)):
            raise ValueError(
                f"{self.where}: user shape {self.user} and protocol shape {self.proto} hold "
                f"different numbers of values"
            )

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        """(N, *proto) -> N fresh arrays of the user's shape."""
        x = np.asarray(x)
        if x.shape[1:] != self.proto:
            raise ValueError(
                f"{self.where}: expected protocol shape (N, {_fmt(self.proto)}), got {x.shape}"
            )
        return [np.array(xn, dtype=np.float64).reshape(self.user) for xn in x]

    def join(self, items: Sequence[np.ndarray], what: str = "output") -> np.ndarray:
        """N user-shaped arrays -> (N, *proto)."""
        out = []
        for n, a in enumerate(items):
            a = np.asarray(a, dtype=np.float64)
            if a.shape != self.user:
                raise ValueError(
                    f"{self.where}: {what} of pattern {n} should have the user shape "
                    f"{self.user}, got {a.shape}"
                )
            out.append(a.reshape(self.proto))
        return np.stack(out)

    def batch_to_user(self, x: np.ndarray) -> np.ndarray:
        """(N, *proto) -> (N, *user), for code that takes a batch."""
        x = np.asarray(x)
        if x.shape[1:] != self.proto:
            raise ValueError(
                f"{self.where}: expected protocol shape (N, {_fmt(self.proto)}), got {x.shape}"
            )
        return x.reshape((x.shape[0],) + self.user)

    def batch_from_user(self, y: np.ndarray, n: int, what: str = "output") -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,) + self.user:
            raise ValueError(
                f"{self.where}: {what} should have shape (N={n}, {_fmt(self.user)}), got "
                f"{y.shape}"
            )
        return np.array(y, dtype=np.float64).reshape((n,) + self.proto)


def _fmt(shape: tuple) -> str:
    return ", ".join(str(d) for d in shape)


def layouts_for(name: str, user_in=None, user_out=None, spec: NetSpec | None = None):
    """(in Layout, out Layout) of protocol layer `name`; user shapes default to the protocol's."""
    if name not in LAYER_NAMES:
        raise ValueError(f"unknown layer name {name!r}; expected one of {list(LAYER_NAMES)}")
    p_in, p_out = protocol_shapes(spec)[name]
    return (Layout(tuple(user_in or p_in), p_in, f"{name} input"),
            Layout(tuple(user_out or p_out), p_out, f"{name} output"))


class _Mapping:
    """maps_to and the reference-layout converters shared by every adapter; `why_unmapped`
    (set it on the instance) tells the report why a layer with maps_to=None has no mapping."""

    why_unmapped: str = "maps_to is None: no mapping to the paper's parameters declared"

    def _init_mapping(self, name, maps_to, from_reference, to_reference):
        if maps_to is not None and (from_reference is None or to_reference is None):
            raise ValueError(
                f"layer {name}: maps_to={maps_to!r} needs both from_reference and to_reference"
            )
        self.name, self.maps_to = name, maps_to
        self._from_ref, self._to_ref = from_reference, to_reference

    def from_reference(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._from_ref is None:
            raise ValueError(f"layer {self.name} does not map to a reference layer")
        return self._from_ref(params)

    def to_reference(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._to_ref is None:
            raise ValueError(f"layer {self.name} does not map to a reference layer")
        return self._to_ref(params)


def _sum_grads(acc: dict | None, g: dict) -> dict:
    if acc is None:
        return {k: (None if v is None else np.array(v, dtype=np.float64)) for k, v in g.items()}
    for k, v in g.items():
        if v is not None:
            acc[k] = acc[k] + v
    return acc


class InPlaceUpdateLayer(_Mapping):
    """Wrap an object with forward(x) -> y and backward(dy, learning_rate) -> dx that applies
    w -= learning_rate * dE/dw to its own attributes.

    `params` maps protocol names to attribute names, e.g. {"w": "kernels", "b": "biases"};
    leave a key out when the layer has no such parameter (its gradient is then None).
    Every forward and backward runs on a deep copy, so the wrapped object's weights are never
    touched (only set_params rebinds them, to fresh copies). The gradient is recovered from the
    copy's weights before and after its backward: grad = (before - after) / rate.

    Rate: 1.0 by default. Multiplying and dividing by 1.0 (or any power of two) is exact, so
    the only rounding is in the user's `w - g` and in our `w - after`: the recovered entry is
    within about 2**-53 * (|w| + 2|g|) of the gradient the code computed, i.e. ~1e-16 relative
    to max(|w|, |g|). A tiny rate such as 1e-5 would put lr*g far below w and lose about
    log10(1/lr) digits of it (5 here). Entries much smaller than their weight keep only an
    absolute accuracy of ~1e-16 |w|; compare gradients norm-wise, not entry by entry.
    dx comes from the same backward call. Code that updates its weights before computing dx
    (a real fault) shows a dx error proportional to the rate; `verify_rate` (another power of
    two, e.g. 2.0) reruns the backward at that rate and raises if w, b or dx depend on it,
    i.e. if the update is not a plain SGD step w -= lr * g.
    """

    def __init__(self, obj, name: str, params: Mapping[str, str], in_layout: Layout,
                 out_layout: Layout, maps_to: str | None = None, from_reference=None,
                 to_reference=None, rate: float = 1.0, verify_rate: float | None = None,
                 forward: str = "forward", backward: str = "backward"):
        self._init_mapping(name, maps_to, from_reference, to_reference)
        self._obj = obj
        self._attrs = dict(params)
        self.in_layout, self.out_layout = in_layout, out_layout
        self.rate, self.verify_rate = float(rate), verify_rate
        self._fwd, self._bwd = forward, backward
        for q, attr in self._attrs.items():
            if q not in ("w", "b"):
                raise ValueError(f"layer {name}: parameter keys must be 'w' or 'b', got {q!r}")
            self._attr(obj, attr)

    def _attr(self, obj, attr) -> np.ndarray:
        if not hasattr(obj, attr):
            raise ValueError(
                f"layer {self.name}: the wrapped {type(obj).__name__} has no attribute "
                f"{attr!r} (declared in params={self._attrs})"
            )
        return np.asarray(getattr(obj, attr))

    def forward(self, x: np.ndarray) -> np.ndarray:
        ys = [getattr(copy.deepcopy(self._obj), self._fwd)(xn) for xn in self.in_layout.split(x)]
        return self.out_layout.join(ys, "forward output")

    def _one_backward(self, xn, dyn, rate):
        c = copy.deepcopy(self._obj)
        getattr(c, self._fwd)(xn)
        before = {q: np.array(self._attr(c, a), dtype=np.float64) for q, a in self._attrs.items()}
        dx = getattr(c, self._bwd)(dyn, rate)
        grads = {"w": None, "b": None}
        for q, a in self._attrs.items():
            after = np.asarray(self._attr(c, a), dtype=np.float64)
            if after.shape != before[q].shape:
                raise ValueError(f"layer {self.name}: backward changed the shape of {a!r} "
                                 f"from {before[q].shape} to {after.shape}")
            grads[q] = (before[q] - after) / rate
        return (None if dx is None else np.array(dx, dtype=np.float64)), grads

    def backward(self, x: np.ndarray, dy: np.ndarray):
        xs, dys = self.in_layout.split(x), self.out_layout.split(dy)
        dxs, acc = [], None
        for xn, dyn in zip(xs, dys):
            dxn, g = self._one_backward(xn, dyn, self.rate)
            if self.verify_rate is not None:
                self._check_rate(xn, dyn, dxn, g)
            dxs.append(dxn)
            acc = _sum_grads(acc, g)
        if all(d is None for d in dxs):
            return None, acc
        if any(d is None for d in dxs):
            raise ValueError(f"layer {self.name}: backward returned dx for some patterns only")
        return self.in_layout.join(dxs, "backward's dx"), acc

    def _check_rate(self, xn, dyn, dxn, g):
        dx2, g2 = self._one_backward(xn, dyn, float(self.verify_rate))
        pairs = [(q, g[q], g2[q]) for q in g if g[q] is not None] + [("dx", dxn, dx2)]
        for q, a, b in pairs:
            if a is None or b is None:
                continue
            scale = max(float(np.max(np.abs(a), initial=0.0)), 1e-300)
            diff = float(np.max(np.abs(a - b), initial=0.0))
            # 1e-9: far above the ~1e-16 recovery error, far below any real rate dependence
            if diff > 1e-9 * scale:
                raise ValueError(
                    f"layer {self.name}: {q} changes with the learning rate ({self.rate} vs "
                    f"{self.verify_rate}: max difference {diff:.3g}); its backward is not a "
                    f"plain SGD step w -= lr * g after computing dx"
                )

    def get_params(self) -> dict[str, np.ndarray]:
        return {q: np.array(self._attr(self._obj, a), dtype=np.float64)
                for q, a in self._attrs.items()}

    def set_params(self, params: Mapping[str, np.ndarray]) -> None:
        for q, a in self._attrs.items():
            if q not in params:
                raise ValueError(f"layer {self.name}: set_params needs {q!r}")
            old = self._attr(self._obj, a)
            new = np.array(params[q], dtype=np.float64)
            if new.shape != old.shape:
                raise ValueError(
                    f"layer {self.name}: {q} ({a!r}) has shape {old.shape}, got {new.shape}"
                )
            setattr(self._obj, a, new)  # rebind: whoever held the old array keeps it intact


class FunctionalLayer(_Mapping):
    """One layer as two pure functions over a parameter dict {"w": ..., "b": ...}:
    forward(p, x) -> y and backward(p, x, dy) -> (dx, {"w": dw, "b": db}), both on one
    pattern in the user's layout (or on a user-layout batch when batched=True). The functions
    get fresh copies of the parameters, so they cannot change the stored ones."""

    def __init__(self, name, params, forward, backward, in_layout: Layout, out_layout: Layout,
                 maps_to=None, from_reference=None, to_reference=None, batched=False):
        self._init_mapping(name, maps_to, from_reference, to_reference)
        self._p = {q: np.array(v, dtype=np.float64) for q, v in params.items()}
        self._f, self._b = forward, backward
        self.in_layout, self.out_layout, self.batched = in_layout, out_layout, batched

    def _pc(self):
        return {q: v.copy() for q, v in self._p.items()}

    def forward(self, x):
        if self.batched:
            n = np.asarray(x).shape[0]
            return self.out_layout.batch_from_user(self._f(self._pc(), self.in_layout
                                                           .batch_to_user(x)), n)
        return self.out_layout.join([self._f(self._pc(), xn) for xn in self.in_layout.split(x)])

    def backward(self, x, dy):
        if self.batched:
            n = np.asarray(x).shape[0]
            dx, g = self._b(self._pc(), self.in_layout.batch_to_user(x),
                            self.out_layout.batch_to_user(dy))
            dx = None if dx is None else self.in_layout.batch_from_user(dx, n, "dx")
            return dx, _sum_grads(None, {"w": g.get("w"), "b": g.get("b")})
        dxs, acc = [], None
        for xn, dyn in zip(self.in_layout.split(x), self.out_layout.split(dy)):
            dxn, g = self._b(self._pc(), xn, dyn)
            dxs.append(dxn)
            acc = _sum_grads(acc, {"w": g.get("w"), "b": g.get("b")})
        if any(d is None for d in dxs):
            return None, acc
        return self.in_layout.join(dxs, "backward's dx"), acc

    def get_params(self):
        return self._pc()

    def set_params(self, params):
        for q, old in self._p.items():
            new = np.array(params[q], dtype=np.float64)
            if new.shape != old.shape:
                raise ValueError(f"layer {self.name}: {q} has shape {old.shape}, got {new.shape}")
            self._p[q] = new


class FunctionalNet:
    """A network written as pure functions, one forward and one backward per layer.

        net = FunctionalNet("mine", params={"H1": {"w": w1, "b": b1}, ...},
                            forward={"H1": f1, ...}, backward={"H1": g1, ...},
                            user_shapes={"H3": ((12, 4, 4), (30, 1)), ...},
                            loss=..., loss_grad=...)

    Each forward(p, x) -> y and backward(p, x, dy) -> (dx, {"w", "b"}) acts on one pattern in
    the user's shapes. Why per layer: the harness checks each layer on the reference's own
    input and upstream gradient, so it must be able to enter the network at any layer. A
    single whole-network backward(params, x, dout) only gives gradients for the loss at the
    output and cannot be entered at H2 with a given dy; split it at the layer boundaries
    (the split is the same code, cut where the shape tags are). `run(x)` and `grads(x, dout)`
    give the whole-network view (per-layer outputs; per-layer gradients) by chaining.
    """

    def __init__(self, name: str, params, forward, backward, loss, loss_grad,
                 spec: NetSpec | None = None, user_shapes=None, maps_to=None, converters=None,
                 batched: bool = False):
        user_shapes, maps_to, converters = user_shapes or {}, maps_to or {}, converters or {}
        self.name, self.spec = name, spec
        self._loss, self._loss_grad = loss, loss_grad
        self.layers = []
        for lname in params:
            lin, lout = layouts_for(lname, *user_shapes.get(lname, (None, None)), spec=spec)
            fr, to = converters.get(lname, (None, None))
            self.layers.append(FunctionalLayer(lname, params[lname], forward[lname],
                                               backward[lname], lin, lout, maps_to.get(lname),
                                               fr, to, batched))

    def loss(self, y, labels) -> float:
        return float(self._loss(y, labels))

    def loss_grad(self, y, labels) -> np.ndarray:
        return np.asarray(self._loss_grad(y, labels), dtype=np.float64)

    def run(self, x) -> list[np.ndarray]:
        outs = []
        for layer in self.layers:
            x = layer.forward(x)
            outs.append(x)
        return outs

    def grads(self, x, dout):
        """Chain the per-layer backward from dE/d(out): ({layer: grads}, {layer: dx})."""
        ins = [x] + self.run(x)[:-1]
        grads, dxs = {}, {}
        for layer, xi in zip(reversed(self.layers), reversed(ins)):
            dout, grads[layer.name] = layer.backward(xi, dout)
            dxs[layer.name] = dout
        return grads, dxs


class TorchModuleLayer(_Mapping):
    """A torch.nn.Module as a protocol layer (the activation belongs inside the module).

    `params` maps "w"/"b" to parameter attributes (default weight/bias). Inputs are cast to
    the module's dtype (use float64 modules for finite-difference checks) and reshaped to
    (N, *in_shape) when in_shape is given (e.g. (192,) for an nn.Linear H3). Gradients come
    from torch.autograd.grad, so the module's .grad fields are never written.
    """

    def __init__(self, module, name: str, params: Mapping[str, str] | None = None,
                 in_shape: tuple | None = None, spec: NetSpec | None = None, maps_to=None,
                 from_reference=None, to_reference=None):
        import torch  # torch is a core dependency; imported here to keep this module light

        self._torch = torch
        self._init_mapping(name, maps_to, from_reference, to_reference)
        self.module = module
        self._attrs = dict(params or {"w": "weight", "b": "bias"})
        p_in, p_out = protocol_shapes(spec)[name]
        self._in_shape = tuple(in_shape) if in_shape is not None else p_in
        self._out = p_out
        if int(np.prod(self._in_shape)) != int(np.prod(p_in)):
            raise ValueError(f"layer {name}: in_shape {self._in_shape} does not hold the "
                             f"protocol's {p_in}")

    def _param(self, q):
        p = self.module
        for part in self._attrs[q].split("."):  # dotted paths, e.g. "0.weight"
            p = getattr(p, part, None)
        return p if isinstance(p, self._torch.nn.Parameter) else None

    def _dtype(self):
        ps = list(self.module.parameters())
        return ps[0].dtype if ps else self._torch.float64

    def _run(self, x, need_grad: bool):
        torch = self._torch
        x = np.asarray(x)
        n = x.shape[0]
        xt = torch.tensor(x.reshape((n,) + self._in_shape), dtype=self._dtype(),
                          requires_grad=need_grad)
        y = self.module(xt)
        if y.numel() != n * int(np.prod(self._out)):
            raise ValueError(f"layer {self.name}: module output {tuple(y.shape)} does not hold "
                             f"the protocol's (N={n}, {_fmt(self._out)})")
        return xt, y

    def forward(self, x):
        with self._torch.no_grad():
            _, y = self._run(x, False)
        return y.detach().cpu().numpy().astype(np.float64).reshape((len(x),) + self._out)

    def backward(self, x, dy):
        torch = self._torch
        with torch.enable_grad():
            xt, y = self._run(x, True)
            dyt = torch.tensor(np.asarray(dy).reshape(tuple(y.shape)), dtype=y.dtype)
            names = [q for q in ("w", "b") if q in self._attrs and self._param(q) is not None]
            ps = [self._param(q) for q in names]
            got = torch.autograd.grad(y, [xt] + ps, grad_outputs=dyt, allow_unused=True)
        grads = {"w": None, "b": None}
        for q, g, p in zip(names, got[1:], ps):
            grads[q] = _to_np(g) if g is not None else np.zeros(tuple(p.shape))
        dx = None if got[0] is None else _to_np(got[0]).reshape(np.asarray(x).shape)
        return dx, grads

    def get_params(self):
        return {q: self._param(q).detach().cpu().numpy().astype(np.float64).copy()
                for q in self._attrs if self._param(q) is not None}

    def set_params(self, params):
        with self._torch.no_grad():
            for q, v in params.items():
                p = self._param(q)
                if p is None:
                    raise ValueError(f"layer {self.name}: the module has no parameter {q!r}")
                v = np.asarray(v)
                if tuple(v.shape) != tuple(p.shape):
                    raise ValueError(f"layer {self.name}: {q} has shape {tuple(p.shape)}, "
                                     f"got {v.shape}")
                p.copy_(self._torch.as_tensor(v, dtype=p.dtype))


def _to_np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def _submodule(module, path: str):
    m = module
    for part in path.split("."):
        if not hasattr(m, part):
            names = [n for n, _ in module.named_modules() if n]
            raise ValueError(f"module has no submodule {path!r}; it has {names}")
        m = getattr(m, part)
    return m


def torch_module_candidate(module, layer_names, name: str = "torch", spec: NetSpec | None = None,
                           loss=None, loss_grad=None, in_shapes=None, maps_to=None,
                           converters=None, param_names=None) -> "AdaptedCandidate":
    """A candidate from an nn.Module whose submodules are the layers.

    layer_names: {"H1": "conv1", ..., "out": "fc2"} (dotted paths allowed), or a list of four
    submodule names in the order H1, H2, H3, out. Per layer (dicts keyed by layer name):
    in_shapes, maps_to, converters (from_reference, to_reference) and param_names
    ({"w": "0.weight", "b": "0.bias"} for an nn.Sequential). Loss defaults to the reference's
    MSE under `spec` (paper preset if None).
    """
    from reference.numpy_net import MSELoss

    if not isinstance(layer_names, Mapping):
        layer_names = dict(zip(LAYER_NAMES, layer_names))
    in_shapes, maps_to, converters = in_shapes or {}, maps_to or {}, converters or {}
    param_names = param_names or {}
    layers = []
    for lname, path in layer_names.items():
        fr, to = converters.get(lname, (None, None))
        layers.append(TorchModuleLayer(_submodule(module, path), lname, param_names.get(lname),
                                       in_shape=in_shapes.get(lname), spec=spec,
                                       maps_to=maps_to.get(lname), from_reference=fr,
                                       to_reference=to))
    mse = MSELoss(spec if spec is not None else paper())
    return AdaptedCandidate(name, spec, layers, loss or mse.value, loss_grad or mse.grad)


@dataclass
class AdaptedCandidate:
    """A protocol Candidate assembled from adapted layers and two loss functions.

    `choices` holds declared choices that NetSpec has no field for (row -> readable value);
    `declared_choices()` returns a copy, empty when nothing extra is declared.
    """

    name: str
    spec: NetSpec | None
    layers: list
    loss_fn: Callable
    loss_grad_fn: Callable
    choices: dict[str, str] = field(default_factory=dict)

    def loss(self, y: np.ndarray, labels: np.ndarray) -> float:
        return float(self.loss_fn(y, labels))

    def loss_grad(self, y: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.asarray(self.loss_grad_fn(y, labels), dtype=np.float64)

    def declared_choices(self) -> dict[str, str]:
        return dict(self.choices)
