"""The PyTorch autograd twin against the hand-written NumPy reference.

Agreement in float64 to ~1e-10 relative means the NumPy backward (written by hand) and
autograd (written by nobody here) compute the same derivatives of the same forward pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference.numpy_net import NumpyNet
from reference.params import LAYERS, Params, init_params, param_shapes
from reference.spec import karpathy, paper
from reference.torch_twin import TorchNet

PARAM_NAMES = ["H1.w", "H1.b", "H2.w", "H2.b", "H3.w", "H3.b", "out.w", "out.b"]


def random_table(seed: int) -> np.ndarray:
    """A non-default H2 table: each H2 map reads 8 of the 12 H1 maps, chosen at random."""
    rng = np.random.default_rng(seed)
    T = np.zeros((12, 12), dtype=bool)
    for i in range(12):
        T[i, rng.choice(12, size=8, replace=False)] = True
    return T


SPECS = {
    "paper": paper,
    "karpathy": karpathy,
    "paper_random_table": lambda: paper(h2_table=random_table(7)),
}


def assert_close(obtained, expected, what, rtol=1e-10, floor=1e-12):
    """|obtained - expected| <= rtol*|expected| + floor*max|expected|, elementwise."""
    obtained, expected = np.asarray(obtained), np.asarray(expected)
    assert obtained.shape == expected.shape, f"{what}: shape {obtained.shape} vs {expected.shape}"
    scale = np.abs(expected).max() if expected.size else 0.0
    bound = rtol * np.abs(expected) + floor * scale
    err = np.abs(obtained - expected)
    bad = err > bound
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} entries differ; max |diff| {err.max():.3e}, "
        f"max|expected| {scale:.3e}"
    )


def rel_to_max(obtained, expected) -> float:
    return float(np.abs(obtained - expected).max() / np.abs(expected).max())


def batch(seed: int, n: int):
    rng = np.random.default_rng(1000 + seed)
    return rng.uniform(-1.0, 1.0, (n, 1, 16, 16)), rng.integers(0, 10, n)


def pair(spec_name: str, seed: int, dtype=torch.float64):
    spec = SPECS[spec_name]()
    params = init_params(spec, seed)
    return spec, params, NumpyNet(spec, params), TorchNet(spec, params, dtype)


CASES = [(s, seed, n) for s in SPECS for seed, n in ((0, 1), (1, 5), (2, 3))]


# ---- float64 parity, whole network ----
@pytest.mark.parametrize("spec_name,seed,n", CASES)
def test_activations_per_layer_match(spec_name, seed, n):
    _, _, ref, twin = pair(spec_name, seed)
    x, _ = batch(seed, n)
    h_ref = h_twin = x
    for name in LAYERS:
        h_ref = ref.layer[name].forward(h_ref)
        h_twin = twin.layer[name].forward(h_twin)
        assert h_twin.dtype == np.float64
        assert_close(h_twin, h_ref, f"{spec_name} seed {seed}: {name} activations")
    assert_close(twin.forward(x), ref.forward(x), f"{spec_name}: whole-net output")


@pytest.mark.parametrize("spec_name,seed,n", CASES)
def test_loss_param_and_input_grads_match(spec_name, seed, n):
    _, _, ref, twin = pair(spec_name, seed)
    x, labels = batch(seed, n)
    E_ref, g_ref, dx_ref = ref.loss_and_grads(x, labels, need_input_grad=True)
    E_twin, g_twin, dx_twin = twin.loss_and_grads(x, labels)
    assert abs(E_twin - E_ref) <= 1e-12 * abs(E_ref)
    assert sorted(g_twin) == sorted(PARAM_NAMES)
    for k in PARAM_NAMES:
        assert_close(g_twin[k], g_ref[k], f"{spec_name} seed {seed}: dE/d{k}")
    assert sorted(dx_twin) == sorted(LAYERS)
    for k in LAYERS:
        assert_close(dx_twin[k], dx_ref[k], f"{spec_name} seed {seed}: dE/d(input of {k})")


def test_need_input_grad_false_mirrors_numpy():
    _, _, ref, twin = pair("paper", 0)
    x, labels = batch(0, 2)
    _, _, dx_ref = ref.loss_and_grads(x, labels, need_input_grad=False)
    _, _, dx_twin = twin.loss_and_grads(x, labels, need_input_grad=False)
    assert dx_ref["H1"] is None and dx_twin["H1"] is None
    assert_close(dx_twin["H2"], dx_ref["H2"], "dE/dH1 without input grad")


def test_a_different_table_is_detected():
    """The parity above is not vacuous: a twin with another H2 table disagrees clearly."""
    _, params, ref, _ = pair("paper", 0)
    other = TorchNet(paper(h2_table=random_table(7)), params)
    x, labels = batch(0, 2)
    _, g_ref, _ = ref.loss_and_grads(x, labels, need_input_grad=True)
    _, g_other, _ = other.loss_and_grads(x, labels)
    assert rel_to_max(g_other["H2.w"], g_ref["H2.w"]) > 1e-3


# ---- per-layer backward, each layer alone ----
LAYER_INPUT = {"H1": (1, 16, 16), "H2": (12, 8, 8), "H3": (12, 4, 4), "out": (30,)}


@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize("name", LAYERS)
def test_per_layer_backward_matches_numpy_layer(spec_name, name):
    _, _, ref, twin = pair(spec_name, 3)
    rng = np.random.default_rng(5)
    x = rng.uniform(-1.0, 1.0, (4, *LAYER_INPUT[name]))
    y_ref = ref.layer[name].forward(x)
    dy = rng.normal(size=y_ref.shape)
    dx_ref, g_ref = ref.layer[name].backward(dy, need_dx=True)
    dx_twin, g_twin = twin.layer[name].backward(x, dy)
    assert_close(twin.layer[name].forward(x), y_ref, f"{name} forward")
    assert_close(dx_twin, dx_ref, f"{spec_name} {name} dx")
    for q in ("w", "b"):
        assert g_twin[q].dtype == np.float64
        assert_close(g_twin[q], g_ref[q], f"{spec_name} {name} d{q}")


def test_h2_dense_kernel_is_zero_off_the_table():
    spec, params, _, twin = pair("paper_random_table", 0)
    W = twin.layer["H2"].dense_w().detach().numpy()  # (12, 12, 5, 5)
    T = spec.h2_table
    assert np.all(W[~T] == 0.0)
    assert np.array_equal(W[T].reshape(12, 8, 5, 5), params["H2.w"])


# ---- float32 twin against the float64 reference ----
def test_float32_twin_close_to_float64_reference():
    # Measured (5 seeds x 2 presets x batch 1 and 8, when written): worst max|diff|/max|ref|
    # 9e-7 (H3.w), loss 1.4e-7 relative. Bound 1e-5: float32 unit roundoff is u = 6e-8 and
    # the longest sums are ~200 terms (H2: 8 maps x 25 taps; H3: 192 inputs), whose
    # worst-case rounding bound is n*u ~ 1.2e-5; errors of a real bug (a wrong index, a
    # missing term) are 1e-3 or more, so 1e-5 still separates rounding from mistakes.
    bound = 1e-5
    worst = 0.0
    for spec_name in ("paper", "karpathy"):
        for seed in (0, 1):
            _, _, ref, twin = pair(spec_name, seed, torch.float32)
            x, labels = batch(seed, 8)
            E_ref, g_ref, dx_ref = ref.loss_and_grads(x, labels, need_input_grad=True)
            E_twin, g_twin, dx_twin = twin.loss_and_grads(x, labels)
            assert abs(E_twin - E_ref) <= bound * abs(E_ref)
            assert twin.forward(x).dtype == np.float32
            pairs = [(g_twin[k], g_ref[k]) for k in PARAM_NAMES]
            pairs += [(dx_twin[k], dx_ref[k]) for k in LAYERS]
            pairs += [(twin.forward(x), ref.forward(x))]
            for obtained, expected in pairs:
                assert obtained.dtype == np.float32
                worst = max(worst, rel_to_max(obtained.astype(np.float64), expected))
    assert worst <= bound, f"float32 twin: worst max|diff|/max|ref| {worst:.2e} > {bound}"


def test_dtype_is_validated():
    spec, params = paper(), init_params(paper(), 0)
    assert TorchNet(spec, params, np.float32).dtype == torch.float32
    with pytest.raises(ValueError, match="float64 or float32"):
        TorchNet(spec, params, torch.float16)


# ---- training in lockstep ----
@pytest.mark.parametrize("spec_name", ["paper", "karpathy"])
def test_sgd_steps_in_lockstep(spec_name):
    spec, _, ref, twin = pair(spec_name, 4)
    for step in range(5):
        x, labels = batch(10 + step, 1 if step % 2 == 0 else 4)
        E_ref = ref.sgd_step(x, labels, 0.05)
        E_twin = twin.sgd_step(x, labels, 0.05)
        assert abs(E_twin - E_ref) <= 1e-12 * abs(E_ref), f"step {step}: loss"
        p_ref, p_twin = ref.get_params(), twin.get_params()
        for k in PARAM_NAMES:
            # per tensor, relative to its largest entry: biases that start at 0 (karpathy)
            # make an elementwise relative test meaningless after one step
            assert rel_to_max(p_twin[k], p_ref[k]) <= 1e-12, f"step {step}: {k}"
    assert rel_to_max(twin.get_params().flat(), init_params(spec, 4).flat()) > 1e-4


def test_sgd_step_returns_loss_before_step_and_predict_matches_forward():
    _, _, _, twin = pair("paper", 0)
    x, labels = batch(0, 3)
    E, _, _ = twin.loss_and_grads(x, labels)
    assert twin.sgd_step(x, labels, 0.1) == E
    assert twin.loss_and_grads(x, labels)[0] < E
    assert np.array_equal(twin.predict(x, batch=2), twin.forward(x))


def test_loss_and_loss_grad_match_numpy_mse():
    _, _, ref, twin = pair("paper", 0)
    x, labels = batch(0, 4)
    y = ref.forward(x)
    assert abs(twin.loss(y, labels) - ref.loss.value(y, labels)) <= 1e-15
    assert_close(twin.loss_grad(y, labels), ref.loss.grad(y, labels), "dE/dy")


# ---- parameters are held by value ----
def test_no_aliasing_between_twin_params_and_numpy():
    spec = paper()
    params = init_params(spec, 0)
    before = params.checksum()
    ref, twin = NumpyNet(spec, params), TorchNet(spec, params)
    x, _ = batch(0, 2)
    y0 = twin.forward(x)

    # no twin tensor shares memory with the Params or the NumpyNet
    for k in PARAM_NAMES:
        t = twin.tensor(k).detach().numpy()
        assert not np.shares_memory(t, params[k])
        assert not np.shares_memory(t, ref.p[k])

    # writing into the Params (and into the NumpyNet) leaves the twin unchanged
    params["H1.w"][...] += 1.0
    ref.p["H3.w"][...] = 0.0
    assert np.array_equal(twin.forward(x), y0)

    # writing into the twin (and training it) leaves the Params copy and the reference alone
    twin2 = TorchNet(spec, init_params(spec, 0))
    fresh = init_params(spec, 0)
    ref2 = NumpyNet(spec, fresh)
    y_ref = ref2.forward(x)
    with torch.no_grad():
        twin2.tensor("H2.w").zero_()
    twin2.sgd_step(x, np.array([1, 2]), 0.5)
    assert fresh.checksum() == before
    assert np.array_equal(ref2.forward(x), y_ref)

    # get_params hands out copies; gradients are not views on the parameters
    got = twin2.get_params()
    got["out.b"][...] = 99.0
    assert not np.any(twin2.tensor("out.b").detach().numpy() == 99.0)
    _, grads, _ = twin2.loss_and_grads(x, np.array([1, 2]))
    grads["out.w"][...] = 0.0
    assert not np.all(twin2.tensor("out.w").detach().numpy() == 0.0)


def test_get_params_round_trip_is_exact_in_float64():
    spec = karpathy()
    params = init_params(spec, 2)
    twin = TorchNet(spec, params)
    assert twin.get_params().checksum() == params.checksum()
    other = init_params(spec, 3)
    twin.set_params(other)
    assert twin.get_params().checksum() == other.checksum()
    layer_p = twin.layer["H2"].get_params()
    assert np.array_equal(layer_p["w"], other["H2.w"])


# ---- bad input gives errors that name what was expected ----
def test_wrong_parameter_shape_is_named():
    spec = paper()
    wrong_spec = spec.replace(h3_units=20)  # H3.w (20, 192): same names, other shapes
    arrays = {k: np.zeros(s) for k, s in param_shapes(wrong_spec).items()}
    bad = Params(wrong_spec, arrays, check_paper=False)
    with pytest.raises(ValueError, match=r"H3\.w.*\(30, 192\).*\(20, 192\)"):
        TorchNet(spec, bad)
    with pytest.raises(ValueError, match="missing"):
        TorchNet(spec, {k: v for k, v in init_params(spec, 0).items() if k != "out.b"})


def test_wrong_inputs_are_named():
    _, _, _, twin = pair("paper", 0)
    with pytest.raises(ValueError, match=r"H1 expects input \(N, 1, 16, 16\)"):
        twin.forward(np.zeros((1, 1, 28, 28)))
    with pytest.raises(ValueError, match=r"H3 expects 192 inputs"):
        twin.layer["H3"].forward(np.zeros((1, 12, 5, 5)))
    with pytest.raises(ValueError, match=r"H2: dy must have the output's shape"):
        twin.layer["H2"].backward(np.zeros((1, 12, 8, 8)), np.zeros((1, 12, 8, 8)))
    x, _ = batch(0, 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        twin.loss_and_grads(x, np.array([3, 10]))
    with pytest.raises(ValueError, match="labels must be 2 integers"):
        twin.sgd_step(x, np.array([3]), 0.1)
