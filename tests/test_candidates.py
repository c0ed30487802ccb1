"""Adapters, built-in candidates, the notebook's faults and the candidate loader.

Finite differences: central, step 1e-6 on float64 values of order 1, so truncation (~h^2) and
rounding (~1e-16 / h) errors are both near 1e-10 relative; 1e-6 leaves four decades of room.
Relative errors are norm-wise, max|obtained - expected| / max|expected|, because entries much
smaller than the largest are known only to an absolute accuracy.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from candidates.adapters import (
    FunctionalNet,
    InPlaceUpdateLayer,
    Layout,
    TorchModuleLayer,
    layouts_for,
    torch_module_candidate,
)
from candidates.loader import CandidateLoadError, MissingExtraError, load_candidate
from candidates.notebook_fixed import build as build_fixed
from candidates.protocol import Candidate, CandidateLayer
from candidates.reference_candidate import reference_candidate
from candidates.registry import BUILTINS, build
from reference.numpy_net import NumpyNet
from reference.params import init_params
from reference.spec import paper

FIXTURES = Path(__file__).parent / "fixtures" / "candidates"
HAS_DMLEARN = importlib.util.find_spec("dmlearn") is not None
needs_dmlearn = pytest.mark.skipif(not HAS_DMLEARN, reason="optional extra dmlearn not installed "
                                   "(pip install '.[notebook]')")
FD_TOL = 1e-6


# ---------------------------------------------------------------- finite differences
def fd_layer(layer, x, dy, n_entries=None, seed=0, h=1e-6):
    """Central differences of <dy, layer.forward(x)> w.r.t. each parameter and x.

    Returns {q: (flat indices, values)}; every entry, or `n_entries` random ones per quantity.
    The layer's parameters are restored afterwards.
    """
    rng = np.random.default_rng(seed)
    p0 = layer.get_params()

    def pick(size):
        if n_entries is None or n_entries >= size:
            return np.arange(size)
        return np.sort(rng.choice(size, n_entries, replace=False))

    def score(xx):
        return float(np.sum(dy * layer.forward(xx)))

    out = {}
    for q in p0:
        idx, vals = pick(p0[q].size), []
        for k in idx:
            p = {kk: v.copy() for kk, v in p0.items()}
            p[q].flat[k] += h
            layer.set_params(p)
            up = score(x)
            p[q].flat[k] -= 2 * h
            layer.set_params(p)
            vals.append((up - score(x)) / (2 * h))
        layer.set_params(p0)
        out[q] = (idx, np.array(vals))
    idx, vals = pick(x.size), []
    for k in idx:
        xx = x.copy()
        xx.flat[k] += h
        up = score(xx)
        xx.flat[k] -= 2 * h
        vals.append((up - score(xx)) / (2 * h))
    out["x"] = (idx, np.array(vals))
    return out


def rel_err(obtained, expected):
    scale = np.max(np.abs(expected))
    return float(np.max(np.abs(obtained - expected)) / scale)


def backward_vs_fd(layer, x, dy, n_entries=None):
    """{quantity: (obtained entries, fd entries)} for w, b and x."""
    dx, g = layer.backward(x, dy)
    fd = fd_layer(layer, x, dy, n_entries)
    got = {"w": g["w"], "b": g["b"], "x": dx}
    return {q: (None if got[q] is None else np.ravel(got[q])[idx], vals)
            for q, (idx, vals) in fd.items()}


def chain_inputs(cand, x):
    """Inputs of each layer in the candidate's own forward pass, and its output."""
    ins = []
    for layer in cand.layers:
        ins.append(x)
        x = layer.forward(x)
    return ins, x


def digit(seed=3):
    """A synthetic 16x16 'digit' in [-1, 1] on a -1 background, batch of one."""
    rng = np.random.default_rng(seed)
    x = -np.ones((1, 1, 16, 16))
    x[0, 0, 3:13, 4:12] = rng.uniform(-1, 1, (10, 8))
    return x


# ---------------------------------------------------------------- adapters on toy layers
class ToyColumnDense:
    """User-style layer: (4, 1) column in, (3, 1) out, y = tanh(W x + b), in-place SGD."""

    def __init__(self, seed=0, update_before_dx=False):
        rng = np.random.default_rng(seed)
        self.W, self.c = rng.normal(size=(3, 4)), rng.normal(size=(3, 1))
        self.update_before_dx = update_before_dx

    def forward(self, x):
        self.x = x
        self.t = np.tanh(self.W @ x + self.c)
        return self.t

    def backward(self, dy, learning_rate):
        g = (1 - self.t**2) * dy
        if self.update_before_dx:  # a real fault: dx with the updated weights
            self.W -= learning_rate * (g @ self.x.T)
            self.c -= learning_rate * g
            return self.W.T @ g
        dx = self.W.T @ g
        self.W -= learning_rate * (g @ self.x.T)
        self.c -= learning_rate * g
        return dx


def toy_expected(W, c, x, dy):
    """Analytic grads summed over the batch; x (N, 4), dy (N, 3)."""
    t = np.tanh(x @ W.T + c[:, 0])
    g = (1 - t**2) * dy
    return g @ W, g.T @ x, g.sum(axis=0)[:, None]


def toy_layer(obj, **kw):
    return InPlaceUpdateLayer(obj, "toy", {"w": "W", "b": "c"}, Layout((4, 1), (4,), "toy in"),
                              Layout((3, 1), (3,), "toy out"), **kw)


def test_layout_reshapes_and_names_the_layer_on_error():
    lay = Layout((30, 1), (30,), "H3 output")
    parts = lay.split(np.arange(60.0).reshape(2, 30))
    assert [p.shape for p in parts] == [(30, 1), (30, 1)]
    np.testing.assert_array_equal(lay.join(parts), np.arange(60.0).reshape(2, 30))
    with pytest.raises(ValueError, match=r"H3 output: expected protocol shape \(N, 30\)"):
        lay.split(np.zeros((1, 10)))
    with pytest.raises(ValueError, match="H3 output.*user shape"):
        lay.join([np.zeros((30,))])
    with pytest.raises(ValueError, match="different numbers of values"):
        Layout((12, 8, 8), (12, 4, 4), "H2 output")
    with pytest.raises(ValueError, match="unknown layer name 'H4'"):
        layouts_for("H4")


def test_inplace_layer_recovers_gradients_and_leaves_weights_alone():
    obj = ToyColumnDense()
    W0, c0 = obj.W, obj.c.copy()
    W0_values = W0.copy()
    layer = toy_layer(obj)
    rng = np.random.default_rng(1)
    x, dy = rng.normal(size=(3, 4)), rng.normal(size=(3, 3))
    dx, g = layer.backward(x, dy)
    exp_dx, exp_dw, exp_db = toy_expected(W0_values, c0, x, dy)
    assert rel_err(dx, exp_dx) < 1e-14
    assert rel_err(g["w"], exp_dw) < 1e-14
    assert rel_err(g["b"], exp_db) < 1e-14
    assert obj.W is W0 and np.array_equal(obj.W, W0_values) and np.array_equal(obj.c, c0)
    np.testing.assert_allclose(layer.forward(x), np.tanh(x @ W0_values.T + c0[:, 0]),
                               rtol=1e-15)


def test_inplace_layer_set_params_rebinds_and_checks_shapes():
    obj = ToyColumnDense()
    held = obj.W
    held_values = held.copy()
    layer = toy_layer(obj)
    layer.set_params({"w": np.ones((3, 4)), "b": np.zeros((3, 1))})
    assert np.array_equal(held, held_values)  # the old array is not written
    assert np.array_equal(layer.get_params()["w"], np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"layer toy: w \('W'\) has shape \(3, 4\)"):
        layer.set_params({"w": np.ones((4, 3)), "b": np.zeros((3, 1))})
    with pytest.raises(ValueError, match="no attribute 'weights'"):
        InPlaceUpdateLayer(obj, "toy", {"w": "weights"}, Layout((4, 1), (4,)),
                           Layout((3, 1), (3,)))


def test_inplace_layer_verify_rate_catches_dx_after_update():
    x, dy = np.ones((1, 4)), np.ones((1, 3))
    bad = ToyColumnDense(update_before_dx=True)
    exp_dx = toy_expected(bad.W, bad.c, x, dy)[0]
    dx, _ = toy_layer(bad).backward(x, dy)  # without the check: a visibly wrong dx
    assert rel_err(dx, exp_dx) > 0.1
    with pytest.raises(ValueError, match="dx changes with the learning rate"):
        toy_layer(bad, verify_rate=2.0).backward(x, dy)
    toy_layer(ToyColumnDense(), verify_rate=2.0).backward(x, dy)  # a plain SGD step passes


def _dense_fns(spec):
    A, S = spec.act_amplitude, spec.act_slope

    def fwd(p, x):  # x (fan_in, 1) column -> (units, 1)
        return A * np.tanh(S * (p["w"] @ x.reshape(-1, 1) + p["b"][:, None]))

    def bwd(p, x, dy):
        t = np.tanh(S * (p["w"] @ x.reshape(-1, 1) + p["b"][:, None]))
        g = A * S * (1 - t**2) * dy
        return (p["w"].T @ g).reshape(x.shape), {"w": g @ x.reshape(1, -1), "b": g[:, 0]}

    return fwd, bwd


def test_functional_net_matches_the_reference_dense_layers():
    spec = paper()
    ref = reference_candidate(spec, seed=2)
    params = {n: ref.layers[i].get_params() for i, n in ((2, "H3"), (3, "out"))}
    fwd, bwd = _dense_fns(spec)
    net = FunctionalNet("fn", params, {"H3": fwd, "out": fwd}, {"H3": bwd, "out": bwd},
                        ref.loss, ref.loss_grad, spec,
                        user_shapes={"H3": ((192, 1), (30, 1)), "out": ((30, 1), (10, 1))})
    x = np.random.default_rng(0).uniform(-1, 1, (2, 12, 4, 4))
    outs = net.run(x)
    assert outs[0].shape == (2, 30) and outs[1].shape == (2, 10)
    np.testing.assert_allclose(outs[1], ref.layers[3].forward(ref.layers[2].forward(x)),
                               rtol=1e-13, atol=1e-15)
    dout = np.random.default_rng(1).normal(size=(2, 10))
    grads, dxs = net.grads(x, dout)
    dx_ref, g_ref = ref.layers[3].backward(outs[0], dout)
    _, g3_ref = ref.layers[2].backward(x, dx_ref)
    assert rel_err(grads["out"]["w"], g_ref["w"]) < 1e-13
    assert rel_err(grads["H3"]["w"], g3_ref["w"]) < 1e-13
    assert rel_err(grads["H3"]["b"], g3_ref["b"]) < 1e-13
    assert dxs["H3"].shape == (2, 12, 4, 4)


def test_torch_module_candidate_matches_the_reference_dense_layers():
    torch = pytest.importorskip("torch")
    spec = paper()

    class ScaledTanh(torch.nn.Module):
        def forward(self, a):
            return spec.act_amplitude * torch.tanh(spec.act_slope * a)

    class Tail(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.h3 = torch.nn.Sequential(torch.nn.Linear(192, 30), ScaledTanh()).double()
            self.fc = torch.nn.Sequential(torch.nn.Linear(30, 10), ScaledTanh()).double()

    ident = (lambda p: dict(p), lambda p: dict(p))
    module, names = Tail(), {"w": "0.weight", "b": "0.bias"}
    cand = torch_module_candidate(module, {"H3": "h3", "out": "fc"}, spec=spec,
                                  in_shapes={"H3": (192,)}, maps_to={"H3": "H3", "out": "out"},
                                  converters={"H3": ident, "out": ident},
                                  param_names={"H3": names, "out": names})
    ref = reference_candidate(spec, seed=4)
    for mine, theirs in zip(cand.layers, ref.layers[2:]):
        mine.set_params(theirs.get_params())
    rng = np.random.default_rng(2)
    for mine, theirs, shape in zip(cand.layers, ref.layers[2:], [(3, 12, 4, 4), (3, 30)]):
        x = rng.uniform(-1, 1, shape)
        dy = rng.normal(size=theirs.forward(x).shape)
        assert rel_err(mine.forward(x), theirs.forward(x)) < 1e-13
        (dx, g), (dx_r, g_r) = mine.backward(x, dy), theirs.backward(x, dy)
        assert dx.shape == x.shape and rel_err(dx, dx_r) < 1e-13
        assert rel_err(g["w"], g_r["w"]) < 1e-13 and rel_err(g["b"], g_r["b"]) < 1e-13
    assert all(p.grad is None for p in module.parameters())  # autograd.grad, not .backward
    assert isinstance(cand, Candidate)
    with pytest.raises(ValueError, match="no submodule 'conv9'"):
        torch_module_candidate(module, {"H1": "conv9"})
    direct = TorchModuleLayer(module.fc[0], "out", spec=spec)
    assert direct.get_params()["w"].shape == (10, 30)


# ---------------------------------------------------------------- reference and karpathy
def test_reference_candidate_equals_numpy_net_and_finite_differences():
    spec = paper()
    cand = reference_candidate(spec, seed=5)
    net = NumpyNet(spec, init_params(spec, 5))
    assert isinstance(cand, Candidate)
    assert all(isinstance(layer, CandidateLayer) for layer in cand.layers)
    assert [(l.name, l.maps_to) for l in cand.layers] == [(n, n) for n in ("H1", "H2", "H3",
                                                                            "out")]
    x, labels = digit(), np.array([7])
    ins, y = chain_inputs(cand, x)
    np.testing.assert_array_equal(y, net.forward(x))
    grads, _ = net.backward(net.loss.grad(net.forward(x), labels))
    dy = cand.loss_grad(y, labels)
    for layer, xi in zip(reversed(cand.layers), reversed(ins)):
        dy, g = layer.backward(xi, dy)
        for q in ("w", "b"):
            np.testing.assert_allclose(g[q], grads[f"{layer.name}.{q}"], rtol=1e-12,
                                       atol=1e-18)
    layer = cand.layers[1]
    dy2 = np.random.default_rng(0).normal(size=(1, 12, 4, 4))
    for q, (got, fd) in backward_vs_fd(layer, ins[1], dy2, n_entries=40).items():
        assert rel_err(got, fd) < FD_TOL, q


def test_karpathy_is_the_reference_under_the_karpathy_preset():
    cand = build("karpathy", seed=0)
    assert cand.name == "karpathy" and cand.spec.name == "karpathy"
    assert cand.spec.act_amplitude == 1.0 and cand.spec.init_fanin_power == 0.5
    p = cand.layers[3].get_params()
    assert np.all(p["b"] == -1.0) and np.all(cand.layers[0].get_params()["b"] == 0.0)


# ---------------------------------------------------------------- the notebook
def lisht(a):
    return a * np.tanh(a)


def lisht_grad(a):
    return np.tanh(a) + a * (1 - np.tanh(a) ** 2)


def notebook_by_loops(p, img):
    """The notebook's forward written out as plain loops (no dmlearn): z1, h1, z2, h2, y."""
    xp = np.full((20, 20), -1.0)
    xp[2:18, 2:18] = img
    z1 = np.zeros((12, 8, 8))
    for i in range(12):
        kf = p["H1"]["w"][i, ::-1, ::-1]  # a true convolution flips the kernel
        for r in range(8):
            for c in range(8):
                z1[i, r, c] = np.sum(xp[2 * r:2 * r + 5, 2 * c:2 * c + 5] * kf)
    h1 = lisht(z1)
    h1p = np.full((12, 10, 10), -1.0)
    h1p[:, 1:9, 1:9] = h1
    z2, h2 = np.zeros((12, 12, 4, 4)), p["H2"]["b"].copy()
    for i in range(12):
        kf = p["H2"]["w"][i, ::-1, ::-1]
        for j in (i + np.arange(8)) % 12:
            for r in range(4):
                for c in range(4):
                    z2[i, j, r, c] = np.sum(h1p[j, 2 * r:2 * r + 4, 2 * c:2 * c + 4] * kf)
            h2[i] += lisht(z2[i, j])
    h3 = lisht(p["H3"]["w"] @ h2.reshape(192) + p["H3"]["b"][:, 0])
    y = lisht(p["out"]["w"] @ h3 + p["out"]["b"][:, 0])
    return dict(z1=z1, h1=h1, h1p=h1p, z2=z2, h2=h2, h3=h3, y=y)


@pytest.fixture(scope="module")
def nb():
    if not HAS_DMLEARN:
        pytest.skip("optional extra dmlearn not installed (pip install '.[notebook]')")
    return build("notebook", seed=0)


def nb_params(cand):
    return {layer.name: layer.get_params() for layer in cand.layers}


@needs_dmlearn
def test_notebook_forward_equals_plain_loops(nb):
    x = digit()
    ref = notebook_by_loops(nb_params(nb), x[0, 0])
    ins, y = chain_inputs(nb, x)
    np.testing.assert_allclose(ins[1][0], ref["h1"], rtol=0, atol=1e-13)
    np.testing.assert_allclose(ins[2][0], ref["h2"], rtol=0, atol=1e-13)
    np.testing.assert_allclose(y[0], ref["y"], rtol=0, atol=1e-13)


@needs_dmlearn
@pytest.mark.data
def test_notebook_forward_on_a_real_digit(nb, usps_dir):
    pd = pytest.importorskip("pandas")
    from PIL import Image

    df = pd.read_parquet(usps_dir / "data/train-00000-of-00001.parquet").head(1)
    img = np.array(Image.open(io.BytesIO(df["image"][0]["bytes"])), dtype=np.float64)
    x = (img / 127.5 - 1)[None, None]  # In [5]
    ref = notebook_by_loops(nb_params(nb), x[0, 0])
    np.testing.assert_allclose(chain_inputs(nb, x)[1][0], ref["y"], rtol=0, atol=1e-13)


@needs_dmlearn
def test_notebook_layers_declare_no_mapping_and_keep_their_weights(nb):
    assert [l.maps_to for l in nb.layers] == [None] * 4
    assert all("LiSHT" in l.why_unmapped for l in nb.layers)
    before = nb_params(nb)
    x = digit()
    ins, y = chain_inputs(nb, x)
    for layer, xi in zip(nb.layers, ins):
        layer.backward(xi, np.ones_like(layer.forward(xi)))
    for name, p in nb_params(nb).items():
        for q in p:
            assert np.array_equal(p[q], before[name][q]), (name, q)
    assert set(nb.declared_choices()) == {
        "activation", "init range and fan-in", "targets", "kernel sizes and sharing",
        "8-of-12 table", "biases", "learning rate", "training set size"}
    assert nb.spec.sources["h2_kernel"].startswith("ASSUMPTION: as the notebook does")


@pytest.fixture(scope="module")
def nb_case(nb):
    """Layer inputs, a fixed upstream gradient per layer, and the loop intermediates."""
    x = digit()
    ins, y = chain_inputs(nb, x)
    rng = np.random.default_rng(7)
    dys = [rng.normal(size=layer.forward(xi).shape) for layer, xi in zip(nb.layers, ins)]
    return ins, dys, notebook_by_loops(nb_params(nb), x[0, 0])


@needs_dmlearn
def test_fault_a_b_h1_weight_and_bias_gradients(nb, nb_case):
    ins, dys, loops = nb_case
    H1 = nb.layers[0]
    dx, g = H1.backward(ins[0], dys[0])
    assert dx is None  # first layer: allowed, not a fault
    # our reading of fault a: unpadded input, undilated gradient, stride 2, no flip
    gz = lisht_grad(loops["z1"]) * dys[0][0]
    img = ins[0][0, 0]
    expect = np.array([[[np.sum(img[2 * m:2 * m + 8, 2 * n:2 * n + 8] * gz[i])
                         for n in range(5)] for m in range(5)] for i in range(12)])
    np.testing.assert_allclose(g["w"], expect, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(g["b"], gz, rtol=1e-12, atol=1e-15)  # fault b: f'(z) dy
    res = backward_vs_fd(H1, ins[0], dys[0], n_entries=40)
    assert rel_err(*res["w"]) > 0.5
    assert np.max(np.abs(res["b"][1])) == 0.0  # the bias has no effect on the output...
    assert np.max(np.abs(res["b"][0])) > 1e-2  # ...yet its gradient is not zero


@needs_dmlearn
def test_fault_c_d_e_h2_gradients(nb, nb_case):
    ins, dys, loops = nb_case
    H2, dy = nb.layers[1], dys[1][0]
    dx, g = H2.backward(ins[1], dys[1])
    k, h1p, z2 = H2.get_params()["w"], loops["h1p"], loops["z2"]
    exp_w, exp_b, exp_x = np.zeros((12, 4, 4)), np.zeros((12, 4, 4)), np.zeros((12, 8, 8))
    for i in range(12):
        for j in (i + np.arange(8)) % 12:
            gz = lisht_grad(z2[i, j]) * dy[i]
            exp_b[i] += gz  # fault d
            exp_w[i] += [[np.sum(h1p[j, 2 * m:2 * m + 4, 2 * n:2 * n + 4] * gz)
                          for n in range(4)] for m in range(4)]  # fault c
            gp = np.full((18, 18), -1.0)  # fault e: -1 fill, stride 2, flip, into map i
            gp[7:11, 7:11] = gz
            exp_x[i] += [[np.sum(gp[2 * m:2 * m + 4, 2 * n:2 * n + 4] * k[i, ::-1, ::-1])
                          for n in range(8)] for m in range(8)]
    np.testing.assert_allclose(g["w"], exp_w, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(g["b"], exp_b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx[0], exp_x, rtol=1e-12, atol=1e-13)
    res = backward_vs_fd(H2, ins[1], dys[1], n_entries=12)
    for q in ("w", "b", "x"):
        assert rel_err(*res[q]) > 0.5, q
    dx0, _ = H2.backward(ins[1], np.zeros_like(dys[1]))
    assert np.max(np.abs(dx0)) > 0.1  # an input gradient with no upstream gradient


@needs_dmlearn
def test_h3_and_out_agree_with_finite_differences(nb, nb_case):
    ins, dys, _ = nb_case
    for layer, xi, dy in zip(nb.layers[2:], ins[2:], dys[2:]):
        for q, (got, fd) in backward_vs_fd(layer, xi, dy).items():
            assert rel_err(got, fd) < FD_TOL, (layer.name, q)


@needs_dmlearn
def test_fault_f_loss_derivative_is_ten_times_too_large(nb):
    y, labels = np.random.default_rng(0).uniform(0, 1, (1, 10)), np.array([3])
    h, fd = 1e-6, np.zeros((1, 10))
    for k in range(10):
        yp, ym = y.copy(), y.copy()
        yp.flat[k] += h
        ym.flat[k] -= h
        fd.flat[k] = (nb.loss(yp, labels) - nb.loss(ym, labels)) / (2 * h)
    np.testing.assert_allclose(nb.loss_grad(y, labels), 10 * fd, rtol=1e-7)
    fixed = build_fixed(0)
    np.testing.assert_allclose(fixed.loss_grad(y, labels), fd, rtol=1e-7)


def test_notebook_without_dmlearn_raises_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dmlearn", None)
    monkeypatch.setitem(sys.modules, "dmlearn.signal", None)
    with pytest.raises(MissingExtraError, match=r"candidate 'notebook' needs the optional "
                       r"extra dmlearn: pip install '\.\[notebook\]'"):
        build("notebook", 0)
    with pytest.raises(CandidateLoadError):
        load_candidate("notebook")


# ---------------------------------------------------------------- notebook-fixed
def test_notebook_fixed_agrees_with_finite_differences_everywhere():
    cand = build("notebook-fixed", seed=0)
    ins, _ = chain_inputs(cand, digit())
    rng = np.random.default_rng(7)
    for layer, xi in zip(cand.layers, ins):
        dy = rng.normal(size=layer.forward(xi).shape)
        for q, (got, fd) in backward_vs_fd(layer, xi, dy).items():
            assert rel_err(got, fd) < FD_TOL, (layer.name, q)


def test_notebook_fixed_batch_gradient_is_the_sum_over_patterns():
    cand = build("notebook-fixed", seed=1)
    H2 = cand.layers[1]
    rng = np.random.default_rng(0)
    x, dy = rng.uniform(0, 1, (3, 12, 8, 8)), rng.normal(size=(3, 12, 4, 4))
    dx, g = H2.backward(x, dy)
    parts = [H2.backward(x[n:n + 1], dy[n:n + 1]) for n in range(3)]
    np.testing.assert_allclose(g["w"], sum(p[1]["w"] for p in parts), rtol=1e-12)
    np.testing.assert_allclose(dx, np.concatenate([p[0] for p in parts]), rtol=1e-12)


@needs_dmlearn
def test_notebook_fixed_keeps_every_choice_of_the_notebook(nb):
    """Faults are corrected, choices kept: the conformance rows cannot tell them apart."""
    fixed = build("notebook-fixed", seed=0)
    assert fixed.declared_choices() == nb.declared_choices()
    assert fixed.spec.to_dict() == nb.spec.to_dict()


@needs_dmlearn
def test_notebook_fixed_has_the_notebooks_forward_but_h1_uses_its_bias(nb):
    """Layer by layer on the same inputs, the same forward as the notebook's, except that
    H1 adds its bias after the activation (fault b's correction, as the notebook's H2)."""
    fixed = build("notebook-fixed", seed=0)
    x = np.concatenate([digit(1), digit(2)])
    ins, _ = chain_inputs(nb, x)
    for lf, ln, xi in zip(fixed.layers, nb.layers, ins):
        expected = ln.forward(xi)
        if ln.name == "H1":
            expected = expected + ln.get_params()["b"]
        np.testing.assert_allclose(lf.forward(xi), expected, rtol=0, atol=1e-13,
                                   err_msg=ln.name)


# ---------------------------------------------------------------- registry and loader
def test_registry_builds_each_builtin():
    for name in BUILTINS:
        if name == "notebook" and not HAS_DMLEARN:
            continue
        cand = load_candidate(name, seed=0)
        assert cand.name == name and [l.name for l in cand.layers] == ["H1", "H2", "H3", "out"]
    with pytest.raises(CandidateLoadError, match="unknown built-in candidate 'lenet'"):
        build("lenet")
    with pytest.raises(CandidateLoadError, match="'lenet' is not a built-in"):
        load_candidate("lenet")


def test_loader_accepts_factory_class_instance_and_module():
    f = FIXTURES / "good_reference.py"
    a = load_candidate(f"{f}:build", seed=3)
    b = load_candidate(f"{f}:GoodCandidate", seed=3)
    c = load_candidate(f"{f}:candidate")
    assert (a.name, b.name, c.name) == ("user-good", "user-good-class", "user-good")
    np.testing.assert_array_equal(a.layers[0].get_params()["w"],
                                  b.layers[0].get_params()["w"])
    assert load_candidate("candidates.karpathy:build", seed=1).name == "karpathy"


def test_loader_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(CandidateLoadError, match="nope.py: no such file"):
        load_candidate(f"{tmp_path}/nope.py:build")
    with pytest.raises(CandidateLoadError, match="importing it failed: AttributeError: "
                       "module 'numpy' has no attribute 'this_attribute_does_not_exist'"):
        load_candidate(f"{FIXTURES}/bad_import.py:build")
    with pytest.raises(CandidateLoadError, match=r"no attribute 'make'; it defines .*'build'"):
        load_candidate(f"{FIXTURES}/good_reference.py:make")
    with pytest.raises(CandidateLoadError, match=r"not a candidate: it has no \['loss_grad'\]"):
        load_candidate(f"{FIXTURES}/not_a_candidate.py:candidate")
    with pytest.raises(CandidateLoadError, match="name the object to load"):
        load_candidate(f"{FIXTURES}/good_reference.py")
    with pytest.raises(CandidateLoadError, match="module no_such_pkg.mod: importing it failed: "
                       "ModuleNotFoundError"):
        load_candidate("no_such_pkg.mod:build")
    bad = tmp_path / "factory_fails.py"
    bad.write_text("def build(seed):\n    raise ValueError('bad seed')\n"
                   "def two(a, b):\n    pass\n"
                   "class Layer:\n    name = 'H5'\n")
    with pytest.raises(CandidateLoadError, match="calling it .* failed: ValueError: bad seed"):
        load_candidate(f"{bad}:build")
    with pytest.raises(CandidateLoadError, match=r"take no argument or `seed`.*\['a', 'b'\]"):
        load_candidate(f"{bad}:two")


def test_loader_checks_layers():
    good = build("reference")
    good.layers[1].name = "H5"
    from candidates.loader import check_candidate

    with pytest.raises(CandidateLoadError, match=r"layers\[1\]: name 'H5' must be one of"):
        check_candidate(good)
    good.layers = []
    with pytest.raises(CandidateLoadError, match="layers must be a non-empty list"):
        check_candidate(good)


def test_fixture_candidates_misbehave_as_documented():
    def load(stem):
        return load_candidate(f"{FIXTURES}/{stem}.py:build", seed=0)

    x = digit()
    ref = build("reference")
    ins, _ = chain_inputs(ref, x)
    dys = [np.ones_like(l.forward(xi)) for l, xi in zip(ref.layers, ins)]
    with pytest.raises(RuntimeError, match="H2 backward is not written yet"):
        load("bad_raises").layers[1].backward(ins[1], dys[1])
    assert load("bad_shapes").layers[2].backward(ins[2], dys[2])[1]["w"].shape == (192, 30)
    assert np.isnan(load("bad_nan").layers[1].backward(ins[1], dys[1])[1]["w"]).sum() == 1
    assert load("bad_none_grad").layers[1].backward(ins[1], dys[1])[1]["w"] is None
    mut = load("bad_mutates").layers[2]
    given = mut.get_params()
    kept = {q: v.copy() for q, v in given.items()}
    mut.set_params(given)
    mut.backward(ins[2], dys[2])
    assert not np.array_equal(given["w"], kept["w"])
    t0 = time.monotonic()
    hang = load("bad_hangs")  # loading is quick; only its H1 backward hangs (not called here)
    assert time.monotonic() - t0 < 5 and hang.layers[0].forward(x).shape == (1, 12, 8, 8)
