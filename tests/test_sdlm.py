"""SDLM's back-propagated Gauss-Newton diagonal: NumPy vs twin, and vs an exact GN diagonal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference.numpy_net import NumpyNet
from reference.params import init_params
from reference.sdlm import GaussNewtonDiagonal, sdlm_steps
from reference.sdlm_torch import sdlm_check_arrays
from reference.spec import karpathy, paper

# Both sides are float64 sums of a few thousand positive terms in different orders: the
# rounding difference is ~1e-15 relative; 1e-10 leaves room only for that.
RTOL = 1e-10


def _patterns(n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 1, 16, 16))


@pytest.mark.parametrize("make_spec", [paper, karpathy], ids=["paper", "karpathy"])
def test_numpy_and_twin_diagonals_agree(make_spec):
    spec = make_spec()
    params = init_params(spec, seed=3)
    x = _patterns(6, 0)
    pairs = sdlm_check_arrays(spec, params, x, np.arange(6) % 10)
    assert list(pairs) == list(params)
    for name, (d_ref, d_pt) in pairs.items():
        assert d_ref.shape == params[name].shape, name
        assert np.all(d_ref > 0), f"{name}: the GN diagonal must be positive"
        np.testing.assert_allclose(d_ref, d_pt, rtol=RTOL, atol=0, err_msg=name)


def test_batch_value_is_the_mean_of_per_pattern_values():
    spec = paper()
    net = NumpyNet(spec, init_params(spec, 1))
    gn = GaussNewtonDiagonal(spec)
    x = _patterns(4, 1)
    whole = gn(net, x)
    each = [gn(net, x[i:i + 1]) for i in range(4)]
    for k in whole:
        np.testing.assert_allclose(whole[k], np.mean([e[k] for e in each], axis=0),
                                   rtol=1e-12, err_msg=k)


def test_output_bias_by_hand():
    """For out.b the diagonal is 2/10 f'(a)^2: one line of algebra, checked directly."""
    spec = paper()
    params = init_params(spec, 2)
    net = NumpyNet(spec, params)
    x = _patterns(1, 2)
    y = net.forward(x)[0]
    t = y / spec.act_amplitude
    fp = spec.act_amplitude * spec.act_slope * (1 - t * t)
    np.testing.assert_allclose(GaussNewtonDiagonal(spec)(net, x)["out.b"], 0.2 * fp ** 2,
                               rtol=1e-13)


def _functional_out(spec, names):
    """out(params...) for one pattern, written independently of both implementations."""
    T = torch.as_tensor(np.array(spec.h2_table, dtype=bool))
    A, S = spec.act_amplitude, spec.act_slope

    def conv(x, w, b, table):
        K = w.shape[-1]
        W = w.new_zeros(table.shape[0], table.shape[1], K, K)
        W = W.index_put(tuple(torch.nonzero(table, as_tuple=True)), w.reshape(-1, K, K))
        xp = F.pad(x, (2, 2, 2, 2), value=spec.pad_value)
        return A * torch.tanh(S * (F.conv2d(xp, W, stride=2) + b))

    def f(x, *ps):
        p = dict(zip(names, ps))
        h = conv(x, p["H1.w"], p["H1.b"], torch.ones(12, 1, dtype=torch.bool))
        h = conv(h, p["H2.w"], p["H2.b"], T).reshape(1, -1)
        h = A * torch.tanh(S * (h @ p["H3.w"].T + p["H3.b"]))
        return (A * torch.tanh(S * (h @ p["out.w"].T + p["out.b"])))[0]  # (10,)

    return f


@pytest.mark.parametrize("make_spec", [paper, karpathy], ids=["paper", "karpathy"])
def test_against_exact_gauss_newton_diagonal(make_spec):
    """Exact GN diagonal diag(J^T (2/10) J) from autograd Jacobians, one pattern.

    Equal to the back-propagated value for out and H3 (no cross terms can arise there);
    in H2 and H1 the back-propagated value drops cross terms, so only positivity and the
    order of magnitude are asserted, and the ratio is the documented approximation.
    """
    spec = make_spec()
    params = init_params(spec, 5)
    x = _patterns(1, 5)
    names = list(params)
    approx = GaussNewtonDiagonal(spec)(NumpyNet(spec, params), x)
    f = _functional_out(spec, names)
    xt = torch.tensor(x)
    ps = tuple(torch.tensor(params[n]) for n in names)
    jac = torch.autograd.functional.jacobian(lambda *q: f(xt, *q), ps)
    for name, J in zip(names, jac):
        exact = (0.2 * (J ** 2).sum(dim=0)).numpy()  # (param shape)
        if name.split(".")[0] in ("out", "H3"):
            np.testing.assert_allclose(approx[name], exact, rtol=RTOL, atol=0, err_msg=name)
        else:
            ratio = approx[name].sum() / exact.sum()
            assert np.all(approx[name] > 0), name
            assert 0.5 < ratio < 2, f"{name}: bp / exact GN = {ratio:.3g}"


def test_steps_need_positive_settings():
    with pytest.raises(ValueError, match="eta > 0 and mu > 0"):
        sdlm_steps({"out.b": np.ones(10)}, eta=0.0, mu=0.1)
    s = sdlm_steps({"out.b": np.array([0.0, 1.0])}, eta=0.1, mu=0.1)
    np.testing.assert_allclose(s["out.b"], [1.0, 0.1 / 1.1])
