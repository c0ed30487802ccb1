"""The paper's optimizer: stochastic diagonal Levenberg-Marquardt (SDLM), in NumPy.

The 1989 paper trains with "a special version of Newton's algorithm that uses a positive,
diagonal approximation of the Hessian" (Sec. 5.2). LeCun et al. (1998), Sec. II-B-5 and
App. C ("Stochastic Diagonal Levenberg-Marquardt"), write it out:

    step_k = eta / (mu + h_kk)            the learning rate of parameter k
    h_kk   ~ <d2E/dw_k2>                  the Gauss-Newton diagonal, averaged over a few
                                          hundred patterns before each pass

and h_kk is back-propagated like a gradient, with squares in place of the weights
(notation as in reference/numpy_net.py; `d2q` is d2E/dq2 for one pattern):

    output        d2y   = 2 / 10          (E_p = mean over the 10 outputs of (y - t)^2)
    unit          d2a_i = f'(a_i)^2 d2y_i (Gauss-Newton: the f'' term is dropped)
    input         d2x_j = sum_i w_ij^2 d2a_i
    weight        d2w_ij = sum over the connections c sharing w_ij of x_c^2 d2a_c
    bias          as a weight whose input is 1

Relation to the exact Gauss-Newton diagonal diag(J^T (2/10) J): equal for every parameter of
`out` and `H3` (each such parameter feeds one unit whose outputs reach the 10 outputs through
a diagonal output Hessian); in H2 and H1 the back-propagated value drops the cross terms
between units of a layer (d2x_j keeps only the i = i' terms of sum_ii' w_ij w_i'j d2a_ii')
and, for shared kernels, between the connections that share a weight. It stays positive,
which is the point of the approximation (tests/test_sdlm.py checks both statements).

Convolutions reuse reference/numpy_net.py's gather indices (`_ConvIndex`): the squared
inputs go through the forward gather for d2w, the squared weights through the backward
gather for d2x, so there is no loop over maps, kernels or pixels.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from reference.numpy_net import NumpyNet, _ConvIndex
from reference.params import LAYERS
from reference.spec import NetSpec


def _conv_geometry(spec: NetSpec) -> dict[str, tuple]:
    s = spec
    return {
        "H1": (np.ones((s.h1_maps, 1), dtype=bool),
               (s.input_size, s.h1_kernel, s.h1_stride, s.h1_pad, s.h1_size)),
        "H2": (np.asarray(s.h2_table, dtype=bool),
               (s.h1_size, s.h2_kernel, s.h2_stride, s.h2_pad, s.h2_size)),
    }


class GaussNewtonDiagonal:
    """Back-propagated Gauss-Newton diagonal of the per-pattern loss of a NumpyNet.

    Uses only the net's public layer forwards (for the activations) and its parameter
    dict; the gather indices are built here from the spec, once.
    """

    def __init__(self, spec: NetSpec):
        self.spec = spec
        self.A, self.S = spec.act_amplitude, spec.act_slope
        self.conv = {}
        for name, (table, geom) in _conv_geometry(spec).items():
            self.conv[name] = (table, _ConvIndex(*geom), geom[1] ** 2)

    def _fprime(self, y):
        """f'(a) from y = A tanh(S a): A S (1 - (y / A)^2)."""
        t = y / self.A
        return self.A * self.S * (1.0 - t * t)

    def _conv_inputs(self, name, x):
        """The (N, C, O*O, K*K) patches the layer reads, padding included."""
        table, idx, KK = self.conv[name]
        N, C, S, _ = x.shape
        xe = np.empty((N, C, S * S + 1), dtype=x.dtype)
        xe[:, :, :-1] = x.reshape(N, C, S * S)
        # ASSUMPTION: the frame is a constant input, so its squared value enters h_kk.
        xe[:, :, -1] = self.spec.pad_value
        return xe[:, :, idx.fwd]  # (N, C, O*O, K*K)

    def _conv_back(self, name, w, x, d2a, need_dx):
        table, idx, KK = self.conv[name]
        N, C, S, _ = x.shape
        M = table.shape[0]
        P2 = self._conv_inputs(name, x) ** 2  # (N, C, O*O, K*K)
        P2 = P2.transpose(0, 2, 1, 3).reshape(-1, C * KK)  # (N*O*O, C*K*K)
        d2a_m = d2a.reshape(N, M, -1)  # (N, M, O*O)
        d2W = d2a_m.transpose(1, 0, 2).reshape(M, -1) @ P2  # (M, C*K*K), summed over N
        d2w = d2W.reshape(M, C, KK)[table].reshape(w.shape)
        d2b = d2a.sum(axis=0)  # (M, O, O)
        d2x = None
        if need_dx:
            W2 = np.zeros((M, C, KK), dtype=w.dtype)
            W2[table] = (w * w).reshape(-1, KK)
            d2P = d2a_m.transpose(0, 2, 1) @ W2.reshape(M, -1)  # (N, O*O, C*K*K)
            d2P = d2P.reshape(N, -1, C, KK).transpose(0, 2, 1, 3).reshape(N, C, -1)
            d2Pe = np.concatenate([d2P, np.zeros((N, C, 1), d2P.dtype)], axis=2)
            d2x = d2Pe[:, :, idx.bwd].sum(axis=3).reshape(N, C, S, S)  # (N, C, S, S)
        return d2x, d2w, d2b

    def __call__(self, net: NumpyNet, x, need_inputs=False):
        """Mean over the patterns of x of the per-pattern diagonal, one array per parameter.

        With need_inputs=True also returns {layer: mean d2E/d(layer input)^2}.
        """
        h = np.asarray(x, dtype=net.dtype)
        if h.ndim == 3:
            h = h[:, None]
        if h.ndim != 4 or h.shape[0] == 0:
            raise ValueError(f"SDLM: expected patterns (N, 1, 16, 16) with N > 0, got "
                             f"{h.shape}")
        N = h.shape[0]
        hs = [h]
        for layer in net.layers:
            hs.append(layer.forward(hs[-1]))  # x, H1, H2, H3, out
        d2y = np.full(hs[-1].shape, 2.0 / hs[-1].shape[1], dtype=net.dtype)  # (N, 10)
        diag, d2in = {}, {}
        for i in reversed(range(len(LAYERS))):
            name = LAYERS[i]
            x_l, y_l = hs[i], hs[i + 1]
            w = net.p[f"{name}.w"]
            fp = self._fprime(y_l)
            d2a = fp * fp * d2y
            need_dx = i > 0 or need_inputs
            if name in self.conv:
                d2x, d2w, d2b = self._conv_back(name, w, x_l, d2a, need_dx)
            else:
                xf = x_l.reshape(N, -1)  # (N, fan_in)
                d2w = d2a.T @ (xf * xf)  # (units, fan_in), summed over N
                d2b = d2a.sum(axis=0)
                d2x = (d2a @ (w * w)).reshape(x_l.shape) if need_dx else None
            diag[f"{name}.w"], diag[f"{name}.b"] = d2w / N, d2b / N
            d2in[name] = None if d2x is None else d2x.mean(axis=0)
            d2y = d2x
        ordered = {k: diag[k] for k in net.p}
        return (ordered, d2in) if need_inputs else ordered


def sdlm_steps(h: Mapping[str, np.ndarray], eta: float, mu: float) -> dict[str, np.ndarray]:
    """step_k = eta / (mu + h_kk), one array per parameter."""
    if not (eta > 0 and mu > 0):
        raise ValueError(f"SDLM needs eta > 0 and mu > 0, got eta={eta}, mu={mu}")
    return {k: eta / (mu + v) for k, v in h.items()}


def gn_diagonal(net: NumpyNet, x) -> dict[str, np.ndarray]:
    """Convenience: the mean back-propagated Gauss-Newton diagonal of `net` over `x`."""
    return GaussNewtonDiagonal(net.spec)(net, x)
