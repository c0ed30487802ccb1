"""SDLM's back-propagated Gauss-Newton diagonal in PyTorch, written out explicitly: the twin.

Same quantities as reference/sdlm.py (read its docstring for the formulas and notation),
computed another way: torch's own convolution ops instead of NumPy gathers.

    conv d2w   = torch.nn.grad.conv2d_weight(pad(x)^2, W.shape, d2a, stride)
                 (the weight-gradient op, fed squared inputs), then the T blocks of H2
    conv d2x   = conv_transpose2d(d2a, W^2, stride), cropped by the padding
    dense      d2w = d2a^T x^2,   d2x = d2a w^2

No autograd: every second derivative is a line of this file. `sdlm_check_arrays` pairs the
NumPy and twin diagonals per parameter for `verify`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reference.numpy_net import NumpyNet
from reference.params import LAYERS, Params
from reference.sdlm import GaussNewtonDiagonal
from reference.spec import NetSpec
from reference.torch_twin import TorchNet, TwinConv


def _fprime(spec: NetSpec, y: torch.Tensor) -> torch.Tensor:
    t = y / spec.act_amplitude
    return spec.act_amplitude * spec.act_slope * (1.0 - t * t)


def twin_gn_diagonal(net: TorchNet, x) -> dict[str, torch.Tensor]:
    """Mean over the patterns of x of the per-pattern back-propagated GN diagonal."""
    h = torch.as_tensor(np.asarray(x), dtype=net.dtype)
    if h.ndim == 3:
        h = h[:, None]
    if h.ndim != 4 or h.shape[0] == 0:
        raise ValueError(f"twin SDLM: expected patterns (N, 1, 16, 16) with N > 0, got "
                         f"{tuple(h.shape)}")
    N = h.shape[0]
    with torch.no_grad():
        hs = [h]
        for layer in net.layers:
            hs.append(layer.forward_t(hs[-1]))  # x, H1, H2, H3, out
        d2y = torch.full_like(hs[-1], 2.0 / hs[-1].shape[1])  # (N, 10)
        out = {}
        for i in reversed(range(len(LAYERS))):
            layer, x_l, y_l = net.layers[i], hs[i], hs[i + 1]
            fp = _fprime(net.spec, y_l)
            d2a = fp * fp * d2y
            if isinstance(layer, TwinConv):
                p = layer.pad
                xp = F.pad(x_l, (p, p, p, p), value=layer.pad_value)  # (N, C, S+2p, S+2p)
                W = layer.dense_w()  # (M, C, K, K)
                d2W = torch.nn.grad.conv2d_weight(xp * xp, W.shape, d2a,
                                                  stride=layer.stride)  # (M, C, K, K)
                T = torch.as_tensor(np.array(layer.T, dtype=bool))
                d2w = d2W[T].reshape(layer.w.shape)
                d2b = d2a.sum(dim=0)  # (M, O, O)
                d2xp = F.conv_transpose2d(d2a, W * W, stride=layer.stride,
                                          output_padding=_out_pad(xp, d2a, layer))
                S = x_l.shape[-1]
                d2x = d2xp[:, :, p:p + S, p:p + S]  # (N, C, S, S)
            else:
                xf = x_l.reshape(N, -1)  # (N, fan_in)
                d2w = d2a.T @ (xf * xf)  # (units, fan_in)
                d2b = d2a.sum(dim=0)
                d2x = (d2a @ (layer.w * layer.w)).reshape(x_l.shape)
            out[f"{layer.name}.w"], out[f"{layer.name}.b"] = d2w / N, d2b / N
            d2y = d2x
    return {k: out[k] for k in ("H1.w", "H1.b", "H2.w", "H2.b", "H3.w", "H3.b",
                                "out.w", "out.b")}


def _out_pad(xp: torch.Tensor, d2a: torch.Tensor, layer: TwinConv) -> int:
    """output_padding that makes conv_transpose2d return the padded input's size."""
    K, s = layer.kernel, layer.stride
    return xp.shape[-1] - ((d2a.shape[-1] - 1) * s + K)


def sdlm_check_arrays(spec: NetSpec, params: Params, x, labels=None
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{parameter name: (NumPy diagonal, twin diagonal)} in float64, for `verify`.

    `labels` are accepted for symmetry with the gradient checks and only validated: the
    Gauss-Newton diagonal of a squared error does not depend on the targets.
    """
    x = np.asarray(x, dtype=np.float64)
    if labels is not None and np.asarray(labels).shape != (x.shape[0],):
        raise ValueError(f"sdlm_check_arrays: {x.shape[0]} patterns but labels of shape "
                         f"{np.asarray(labels).shape}")
    ref = GaussNewtonDiagonal(spec)(NumpyNet(spec, params, np.float64), x)
    twin = twin_gn_diagonal(TorchNet(spec, params, torch.float64), x)
    return {k: (ref[k], twin[k].numpy().copy()) for k in ref}
