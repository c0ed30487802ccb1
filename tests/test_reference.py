"""The NumPy reference alone: the paper's counts, each layer's backward against finite
differences of its own forward, parameter I/O, and the spec's provenance."""

from __future__ import annotations

import numpy as np
import pytest

from harness.checks.finite_diff import central_diff
from reference.numpy_net import NumpyNet
from reference.params import Params, init_params, load_params, param_shapes, save_params
from reference.spec import BLOCK_TABLE, NetSpec, karpathy, paper


def test_counts_match_the_paper():
    s = paper()
    p = init_params(s, 0)
    assert s.layer_param_counts() == {"H1": 1068, "H2": 2592, "H3": 5790, "out": 310}
    assert p.count() == 9760
    assert s.unit_count() == 1256
    assert s.connection_count() == 64660


def test_a_spec_that_breaks_the_counts_fails_at_construction():
    bad = paper().replace(h3_units=31)
    with pytest.raises(ValueError, match="9760|5790"):
        init_params(bad, 0)


def test_every_choice_has_a_source_and_assumptions_are_tagged():
    for s in (paper(), karpathy()):
        names = [n for n, _, _ in s.choices()]
        assert set(names) == set(NetSpec.choice_names())
        for n, _, src in s.choices():
            assert src.startswith("paper") or src.startswith("ASSUMPTION:"), n
    assert "bias_init" in dict(paper().assumptions())
    assert "h2_table" in dict(paper().assumptions())


def test_table_is_checked_and_any_valid_table_is_accepted():
    rng = np.random.default_rng(1)
    T = np.zeros((12, 12), bool)
    for i in range(12):
        T[i, rng.choice(12, 8, replace=False)] = True
    assert np.array_equal(paper(T).h2_table, T)
    with pytest.raises(ValueError, match="8 H1 maps"):
        paper(np.ones((12, 12), bool))
    with pytest.raises(ValueError, match="shape"):
        paper(np.ones((12, 8), bool))
    assert BLOCK_TABLE.sum(axis=1).tolist() == [8] * 12


def test_init_ranges_follow_the_preset():
    p = init_params(paper(), 3)
    assert np.abs(p["H2.w"]).max() <= 2.4 / 200
    assert np.abs(p["H2.w"]).max() > 0.9 * 2.4 / 200
    k = init_params(karpathy(), 3)
    assert np.abs(k["H2.w"]).max() <= 2.4 / np.sqrt(200)
    assert np.abs(k["H2.w"]).max() > 0.9 * 2.4 / np.sqrt(200)
    assert np.all(k["out.b"] == -1) and np.all(k["H1.b"] == 0)
    assert init_params(paper(), 3).checksum() == p.checksum()
    assert init_params(paper(), 4).checksum() != p.checksum()


def _layer_fd_case(spec, seed, name):
    rng = np.random.default_rng(seed)
    net = NumpyNet(spec, init_params(spec, seed))
    x = rng.uniform(-1, 1, (2, 1, 16, 16))
    h = x
    for layer in net.layers:
        if layer.name == name:
            break
        h = layer.forward(h)
    layer = net.layer[name]
    y = layer.forward(h)
    dy = rng.standard_normal(y.shape)
    dx, g = layer.backward(dy)
    h = np.ascontiguousarray(h)

    def objective(xx=h):
        return float(np.sum(layer.forward(xx) * dy))

    fd = {q: central_diff(objective, net.p[f"{name}.{q}"]) for q in ("w", "b")}
    xp = h.copy()
    fd["x"] = central_diff(lambda: objective(xp), xp)
    return g, dx, fd


@pytest.mark.parametrize("name", ["H1", "H2", "H3", "out"])
@pytest.mark.parametrize("spec", [paper(), karpathy()], ids=["paper", "karpathy"])
def test_each_layer_backward_matches_finite_differences(spec, name):
    g, dx, fd = _layer_fd_case(spec, 7, name)
    for q, got in (("w", g["w"]), ("b", g["b"]), ("x", dx)):
        err = np.abs(got - fd[q]).max() / np.abs(fd[q]).max()
        assert err < 1e-7, f"{name}.{q}: max error {err:.1e} of the largest entry"


def test_fd_check_can_fail():
    g, dx, fd = _layer_fd_case(paper(), 7, "H2")
    wrong = g["w"].copy()
    wrong[3, 2, 1, 1] *= 1.01
    assert np.abs(wrong - fd["w"]).max() / np.abs(fd["w"]).max() > 1e-5


def test_float32_on_request_and_batches():
    s = paper()
    p = init_params(s, 0)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 1, 16, 16))
    y64 = NumpyNet(s, p).forward(x)
    net32 = NumpyNet(s, p, np.float32)
    y32 = net32.forward(x)
    assert y32.dtype == np.float32 and y32.shape == (5, 10)
    assert np.abs(y32 - y64).max() < 1e-5
    E, g, _ = net32.loss_and_grads(x, np.arange(5))
    assert all(v.dtype == np.float32 for v in g.values())


def test_the_net_holds_its_own_copy():
    s = paper()
    p = init_params(s, 0)
    before = p.checksum()
    net = NumpyNet(s, p)
    net.sgd_step(np.zeros((1, 1, 16, 16)), np.array([3]), 0.1)
    assert p.checksum() == before
    assert not any(np.shares_memory(net.p[k], p[k]) for k in p)


def test_params_roundtrip_and_bad_files(tmp_path):
    s = paper()
    p = init_params(s, 5)
    f = save_params(p, tmp_path / "p.npz")
    assert load_params(f, s).checksum() == p.checksum()
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        load_params(tmp_path / "bad.npz", s)
    with pytest.raises(ValueError, match="missing.npz"):
        load_params(tmp_path / "missing.npz", s)
    arrays = p.arrays()
    arrays["H1.w"] = np.zeros((12, 1, 4, 4))
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(ValueError, match=r"shape.npz.*H1.w"):
        load_params(tmp_path / "shape.npz", s)
    obj = p.arrays()
    obj["H1.b"] = np.array([{"a": 1}], dtype=object)
    np.savez(tmp_path / "pickle.npz", **obj)
    with pytest.raises(ValueError, match="pickle.npz"):
        load_params(tmp_path / "pickle.npz", s)


def test_params_reject_nan_and_unknown_names():
    s = paper()
    arrays = init_params(s, 0).arrays()
    arrays["H3.b"][0] = np.nan
    with pytest.raises(ValueError, match="H3.b"):
        Params(s, arrays)
    arrays = init_params(s, 0).arrays()
    arrays["H4.w"] = np.zeros(3)
    with pytest.raises(ValueError, match="H4.w"):
        Params(s, arrays)
    assert set(param_shapes(s)) == set(init_params(s, 0))


def test_assumptions_file_is_up_to_date():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, str(root / "scripts" / "list_assumptions.py"),
                        "--check"], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
