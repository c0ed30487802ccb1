"""Built-in `notebook`: the seed notebook's NumPy network, rebuilt with the same arithmetic.

Source: /work/shared/seed/000_cc87fcafc78d1a0b.txt, a from-scratch rebuild of the 1989 net whose
author suspected the H1 gradient and gave up. Cells are cited as In [n]. This module is our own
code; it calls dmlearn.signal.convolve_tensor (flips the kernel, i.e. a true convolution) and
correlate_tensor (no flip) with the same arguments as the notebook. Both pad with fill_value,
then take strided windows.

Choices (declared in `notebook_spec()` and `declared_choices()`; not faults):
    In [3]   only the first 100 training digits are used
    In [5]   pixels / 127.5 - 1
    In [6]   one-hot targets 0/1, as (10, 1) columns
    In [9]   weights AND biases ~ U[-sqrt(2.4/F), +sqrt(2.4/F)] with F the layer's whole input
             size (256, 768, 192, 30), not a unit's fan-in (25, 200, 192, 30)
    In [10]  LiSHT everywhere: f(a) = a tanh(a), f'(a) = tanh(a) + a (1 - tanh(a)^2);
             f >= 0 and f(-a) = f(a)
    In [11]  loss = mean over the 10 outputs of (t - y)^2
    In [13]  stride 2 and pad value -1 in both convolutional layers
    In [14]  H1: 12 kernels 5x5 (no input-map axis), padding 2, convolve_tensor (kernel
             flipped); 12x8x8 biases, one per unit, meant to be added after the activation
             as in H2 (the forward starts from them, then overwrites them: fault b)
    In [16]  H2: one 4x4 kernel per H2 map (192 weights), shared by all 8 H1 maps it reads;
             padding 1; map i reads H1 maps (i + k) % 12, k = 0..7; LiSHT is applied to each of
             the 8 single-map convolutions and the results are summed; the 12x4x4 bias is added
             after the activation: y_i = b_i + sum_j f(z_ij), z_ij = conv(x_j, k_i)
    In [19]  H3: 30 units, input flattened in C order, y = f(W x + b), b a (30, 1) column
    In [21]  out (the notebook's H4): 10 units, y = f(W x + b)
    In [26]  plain SGD, one pattern per step, rate 1e-5, 23 passes; every backward updates its
             weights in place after computing dx with the old weights

Faults (each demonstrated against central finite differences in tests/test_candidates.py):
    a  In [14] H1 weight gradient: correlate_tensor of the UNPADDED 16x16 input with the 8x8
       gradient at stride 2 -> dk[m, n] = sum_rc x[2m+r, 2n+c] g[r, c]. The forward reads the
       padded input at 2r+u, so the right sum is over xp[2r+u, 2c+v] (the gradient dilated by
       2, stride 1, over the padded input) and, as the forward flips the kernel, the result
       must be flipped back. Wrong padding, wrong stride/dilation, missing flip.
    b  In [14] H1 biases: the forward copies the biases into the output, then overwrites
       every map with f(conv) (`=` where H2 has `+=`), so the biases never reach the output
       and dE/db = 0; the backward returns f'(z) dy (the gradient of f(z + b)) and updates
       them. A fault of the forward that shows as a wrong bias gradient.
    c  In [16] H2 weight gradient: correlate_tensor(xp_j, g_ij) at stride 2 over the padded
       input: same stride/dilation error and missing flip as in (a); padding and fill are right.
    d  In [16] H2 bias gradient: y_i = b_i + sum_j f(z_ij) gives dE/db_i = dy_i; the backward
       returns sum_j f'(z_ij) dy_i.
    e  In [16] H2 input gradient, four errors: (1) accumulated into map i (the H2 map)
       instead of j (the H1 map read), so each H1 map receives the sum of one H2 map's 8
       contributions; (2) the gradient is padded with -1 instead of 0, so dx != 0 even when
       dy = 0; (3) taken at stride 2 without dilating the gradient (the transpose of a stride-2
       window needs the gradient dilated by 2, at stride 1); (4) convolve_tensor flips the
       kernel, but the forward already convolves, so the transpose must correlate with the
       kernel as stored (correlate_tensor). Only with all four fixed does it match FD.
    f  In [11] loss derivative 2 (y - t) for a loss that is the MEAN over 10 outputs: 10 times
       too large (for a batch of N: 10 N times).
Not faults: H1 returns no input gradient (first layer; dx = None is allowed by the protocol);
H3 (In [19]) and out (In [21]) back-propagate correctly; the in-place update uses the old
weights for dx.

maps_to: a layer maps to the paper's layer only if its parameters have the same sizes and the
same function of them under the same spec choices. Every layer here applies LiSHT, not
A tanh(S a), so none maps (maps_to=None) and each is checked only against finite differences of
its own forward. (H2 would not map anyway: 192 shared 4x4 weights, not 12x8 5x5 kernels.)
"""

from __future__ import annotations

import math

import numpy as np

from candidates.adapters import AdaptedCandidate, InPlaceUpdateLayer, layouts_for
from candidates.registry import MissingExtraError
from reference.spec import NetSpec, paper

# why no layer maps to the paper's (shown in reports); see maps_to in the docstring above
WHY_UNMAPPED = {
    "H1": "LiSHT a*tanh(a), not A tanh(S a); same sizes (12x5x5, 12x8x8) but the kernels are "
          "convolution (flipped) kernels and the biases never reach the output",
    "H2": "LiSHT inside the sum over input maps; 12 4x4 kernels each shared by 8 input maps "
          "(192 weights), not 12x8 5x5 kernels; bias added after the activation",
    "H3": "LiSHT a*tanh(a), not A tanh(S a); parameter sizes as the paper's (30x192, 30)",
    "out": "LiSHT a*tanh(a), not A tanh(S a); parameter sizes as the paper's (10x30, 10)",
}
PAD_VALUE = -1.0
STRIDE = 2
# user shapes of one pattern (the notebook's own layout)
USER_SHAPES = {"H1": ((1, 16, 16), (12, 8, 8)), "H2": ((12, 8, 8), (12, 4, 4)),
               "H3": ((12, 4, 4), (30, 1)), "out": ((30, 1), (10, 1))}
FAN_IN = {"H1": 16 * 16, "H2": 12 * 8 * 8, "H3": 12 * 4 * 4, "out": 30}
PARAM_SHAPES = {"H1": ((12, 5, 5), (12, 8, 8)), "H2": ((12, 4, 4), (12, 4, 4)),
                "H3": ((30, 192), (30, 1)), "out": ((10, 30), (10, 1))}
LEARNING_RATE = 1e-5
TRAIN_SIZE = 100


def h2_reads(i: int) -> np.ndarray:
    """The H1 maps H2 map i reads: (i + k) % 12 for k = 0..7, in that order (In [16])."""
    return (np.arange(8) + i) % 12


def rolled_table() -> np.ndarray:
    T = np.zeros((12, 12), dtype=bool)
    for i in range(12):
        T[i, h2_reads(i)] = True
    return T


def lisht(a):
    return a * np.tanh(a)


def lisht_grad(a):
    t = np.tanh(a)
    return t + a * (1.0 - t * t)


def init_notebook_params(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """U[-sqrt(2.4/F), sqrt(2.4/F)] for weights and biases, F = whole input size (In [9]);
    drawn in the notebook's construction order H1, H2, H3, out (weights, then biases)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (ws, bs) in PARAM_SHAPES.items():
        r = math.sqrt(2.4 / FAN_IN[name])
        out[name] = {"w": rng.uniform(-r, r, ws), "b": rng.uniform(-r, r, bs)}
    return out


def targets01(labels, units: int = 10) -> np.ndarray:
    labels = np.asarray(labels)
    t = np.zeros((labels.shape[0], units))
    t[np.arange(labels.shape[0]), labels] = 1.0
    return t


def loss(y, labels) -> float:
    """In [11]: mean of (t - y)^2 (over the 10 outputs; over patterns too for a batch)."""
    return float(np.mean((targets01(labels) - y) ** 2))


def loss_grad_faulty(y, labels) -> np.ndarray:
    """In [11]: 2 (y - t), without the mean's 1/10 (fault f)."""
    return 2.0 * (np.asarray(y) - targets01(labels))


class _H1:
    """In [14]. forward: (1, 16, 16) -> (12, 8, 8)."""

    def __init__(self, sig, k, b):
        self.conv, self.corr = sig
        self.kernels, self.biases = k, b  # (12, 5, 5), (12, 8, 8)

    def forward(self, x):
        self.x = x
        y = self.biases.copy()
        self.z = np.zeros((12, 8, 8))
        for i in range(12):
            self.z[i] = self.conv(x[0], self.kernels[i], step_size=STRIDE, padding=2,
                                  fill_value=PAD_VALUE)
            y[i] = lisht(self.z[i])  # overwrites the bias copy: fault b
        return y

    def backward(self, dy, learning_rate):
        dk, db = np.zeros((12, 5, 5)), np.zeros((12, 8, 8))
        for i in range(12):
            g = lisht_grad(self.z[i]) * dy[i]
            # fault a: unpadded input, gradient not dilated, no flip -> (5, 5)
            dk[i] = self.corr(self.x[0], g, step_size=STRIDE, padding=0, fill_value=PAD_VALUE)
            db[i] = g  # fault b: the bias never reached the output
        self.kernels -= learning_rate * dk
        self.biases -= learning_rate * db
        return None


class _H2:
    """In [16]. forward: (12, 8, 8) -> (12, 4, 4)."""

    def __init__(self, sig, k, b):
        self.conv, self.corr = sig
        self.kernels, self.biases = k, b  # (12, 4, 4), (12, 4, 4)

    def forward(self, x):
        self.x = x
        y = self.biases.copy()
        self.z = np.zeros((12, 12, 4, 4))  # (H2 map i, H1 map j, 4, 4)
        for i in range(12):
            for j in h2_reads(i):
                self.z[i, j] = self.conv(x[j], self.kernels[i], step_size=STRIDE, padding=1,
                                         fill_value=PAD_VALUE)
                y[i] += lisht(self.z[i, j])  # activation inside the sum, bias outside
        return y

    def backward(self, dy, learning_rate):
        dk, db, dx = np.zeros((12, 4, 4)), np.zeros((12, 4, 4)), np.zeros((12, 8, 8))
        g = np.zeros((12, 12, 4, 4))
        for i in range(12):
            dk_parts, dx_parts = np.zeros((12, 4, 4)), np.zeros((12, 8, 8))
            for j in h2_reads(i):
                g[i, j] = lisht_grad(self.z[i, j]) * dy[i]
                # fault c: stride 2 over the padded input, gradient not dilated, no flip
                dk_parts[j] = self.corr(self.x[j], g[i, j], step_size=STRIDE, padding=1,
                                        fill_value=PAD_VALUE)
                # fault e: -1 fill, stride 2 without dilation ...
                dx_parts[j] = self.conv(g[i, j], self.kernels[i], step_size=STRIDE,
                                        padding=7, fill_value=PAD_VALUE)
            dk[i] = dk_parts.sum(axis=0)
            db[i] = g[i].sum(axis=0)  # fault d: should be dy[i]
            dx[i] = dx_parts.sum(axis=0)  # ... fault e: into map i instead of the maps j
        self.kernels -= learning_rate * dk
        self.biases -= learning_rate * db
        return dx


class _Dense:
    """In [19] (H3, input (12, 4, 4) flattened) and In [21] (out, input (30, 1))."""

    def __init__(self, w, b):
        self.weights, self.bias = w, b  # (units, fan_in), (units, 1)

    def forward(self, x):
        self.shape, self.x = x.shape, x.reshape(-1, 1)  # (fan_in, 1), C order
        self.a = self.weights @ self.x + self.bias
        return lisht(self.a)  # (units, 1)

    def backward(self, dy, learning_rate):
        g = lisht_grad(self.a) * dy
        dw = g @ self.x.T
        dx = (self.weights.T @ g).reshape(self.shape)  # old weights, before the update
        self.weights -= learning_rate * dw
        self.bias -= learning_rate * g
        return dx


def _why(cell: str, text: str) -> str:
    return f"ASSUMPTION: as the notebook does ({cell}): {text}"


def notebook_spec(name: str = "notebook") -> NetSpec:
    """The notebook's choices where NetSpec has a field for them (see declared_choices())."""
    return paper().replace(
        name=name,
        h2_kernel=4, h2_pad=1, h2_table=rolled_table(),
        weight_sharing="H1: one 5x5 kernel per map; H2: one 4x4 kernel per H2 map, shared "
                       "by the 8 H1 maps it reads",
        bias_tying="one bias per unit in H1 and H2, added after the activation",
        act_amplitude=1.0, act_slope=1.0,
        init_scale=math.sqrt(2.4), init_fanin_power=0.5,
        target_on=1.0, target_off=0.0,
        learning_rate=LEARNING_RATE, train_size=TRAIN_SIZE,
        sources={
            "h2_kernel": _why("In [16]", "4x4 kernels"),
            "h2_pad": _why("In [16]", "padding 1, giving 4x4 outputs at stride 2"),
            "h2_table": _why("In [16]", "H2 map i reads H1 maps (i + k) % 12, k = 0..7"),
            "weight_sharing": _why("In [14], In [16]", "one kernel per H2 map for all inputs"),
            "bias_tying": _why("In [14], In [16]", "H2 adds the bias after f; H1 starts its "
                               "output from a copy of the biases"),
            "act_amplitude": _why("In [10]", "LiSHT f(a) = a tanh(a), not A tanh(S a); "
                                  "A and S are set to 1 and do not describe it"),
            "act_slope": _why("In [10]", "LiSHT, tanh(1 * a) times a"),
            "init_scale": _why("In [9]", "U[-sqrt(2.4/F), sqrt(2.4/F)], so scale sqrt(2.4)"),
            "init_fanin_power": _why("In [9]", "sqrt; F is the layer's whole input size "
                                     "(256, 768, 192, 30), not the unit's fan-in"),
            "bias_init": _why("In [9]", "biases drawn like the weights, same F"),
            "target_on": _why("In [6]", "one-hot 0/1 targets"),
            "target_off": _why("In [6]", "one-hot 0/1 targets"),
            "learning_rate": _why("In [26]", "plain SGD, rate 1e-5"),
            "train_size": _why("In [3]", "the first 100 training digits only"),
            "passes": _why("In [26]", "23 epochs"),
        },
    )


def declared_choices():
    """Readable values for the conformance rows NetSpec cannot express: the notebook's
    choices, which notebook-fixed keeps. Faults are not choices and are not listed here."""
    return {
        "activation": "LiSHT f(a) = a tanh(a) in every layer, applied inside H2's sum over "
                      "input maps (In [10], In [16])",
        "init range and fan-in": "weights and biases U[-sqrt(2.4/F), sqrt(2.4/F)], F = whole "
                                 "input size: 256, 768, 192, 30 (In [9])",
        "targets": "one-hot 0/1 (In [6])",
        "kernel sizes and sharing": "H1 12 kernels 5x5, true convolution (flipped), stride 2, "
                                    "pad 2 with -1; H2 12 kernels 4x4, each shared by the 8 H1 "
                                    "maps its map reads, stride 2, pad 1 with -1 (In [14], "
                                    "In [16])",
        "8-of-12 table": "H2 map i reads H1 maps (i + k) % 12, k = 0..7 (In [16])",
        "biases": "one per unit in H1 (12x8x8) and H2 (12x4x4), added after the activation; "
                  "in H3 and out inside it (In [14], In [16], In [19], In [21])",
        "learning rate": "1e-5, plain SGD, one pattern per step (In [26])",
        "training set size": "100 of the 7,291 training digits (In [3])",
    }


def _dmlearn_functions():
    try:
        from dmlearn.signal import convolve_tensor, correlate_tensor
    except ImportError:
        raise MissingExtraError("notebook", "dmlearn", "notebook") from None
    return convolve_tensor, correlate_tensor


def build(seed: int = 0) -> AdaptedCandidate:
    """The notebook's network, parameters from init_notebook_params(seed)."""
    sig = _dmlearn_functions()
    p = init_notebook_params(seed)
    objs = {"H1": _H1(sig, p["H1"]["w"], p["H1"]["b"]), "H2": _H2(sig, p["H2"]["w"], p["H2"]["b"]),
            "H3": _Dense(p["H3"]["w"], p["H3"]["b"]), "out": _Dense(p["out"]["w"], p["out"]["b"])}
    attrs = {"H1": {"w": "kernels", "b": "biases"}, "H2": {"w": "kernels", "b": "biases"},
             "H3": {"w": "weights", "b": "bias"}, "out": {"w": "weights", "b": "bias"}}
    layers = []
    for name, obj in objs.items():
        lin, lout = layouts_for(name, *USER_SHAPES[name])
        # maps_to=None: LiSHT is not the paper's f, see the module docstring
        layer = InPlaceUpdateLayer(obj, name, attrs[name], lin, lout, maps_to=None)
        layer.why_unmapped = WHY_UNMAPPED[name]
        layers.append(layer)
    return AdaptedCandidate("notebook", notebook_spec(), layers, loss, loss_grad_faulty,
                            declared_choices())
