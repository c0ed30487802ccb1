"""The `notebook` candidate against the seed notebook itself: the same arithmetic, bit for bit.

The seed (../shared/seed/000_cc87fcafc78d1a0b.txt, a text dump of the notebook) is read and
its definition cells are executed here; no line of it is copied into the project. The seed's
layers and ours start from the same parameters; forward outputs, the loss and its derivative,
every input gradient and every parameter after the in-place update must be exactly equal.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

SEED = Path(__file__).parents[2] / "shared/seed/000_cc87fcafc78d1a0b.txt"
# imports; random_weights; LiSHT; the loss; Layer; Convolutional; H1; H2; Dense; H3; H4
SEED_CELLS = (1, 9, 10, 11, 12, 13, 14, 16, 18, 19, 21)

pytest.importorskip("dmlearn", reason="the notebook candidate needs the dmlearn extra")
pytestmark = pytest.mark.skipif(not SEED.is_file(), reason=f"seed notebook absent: {SEED}")


def _cell_code(n: str, body: str):
    """The code of one cell: the longest leading run of its lines that compiles (the dump
    puts the cell's printed output and the next markdown right after its code)."""
    lines = body.split("\n")
    for k in range(len(lines), 0, -1):
        try:
            return compile("\n".join(lines[:k]), f"{SEED.name} In [{n}]", "exec")
        except SyntaxError:
            continue
    raise AssertionError(f"{SEED.name}: no code found in cell In [{n}]")


@pytest.fixture(scope="module")
def seed_ns() -> dict:
    parts = re.split(r"^In \[(\d+)\]:\n", SEED.read_text(), flags=re.M)
    cells = dict(zip(parts[1::2], parts[2::2]))
    missing = [n for n in SEED_CELLS if str(n) not in cells]
    assert not missing, f"{SEED.name}: cells {missing} not found"
    ns: dict = {}
    for n in SEED_CELLS:
        exec(_cell_code(str(n), cells[str(n)]), ns)  # noqa: S102 - the seed, read-only
    return ns


def test_notebook_rebuild_has_the_seeds_arithmetic(seed_ns):
    from dmlearn.signal import convolve_tensor, correlate_tensor

    import candidates.notebook as nb

    np.random.seed(3)  # the seed draws its parameters from the global generator
    seed = [seed_ns[c]() for c in ("H1", "H2", "H3", "H4")]
    sig = (convolve_tensor, correlate_tensor)
    mine = [nb._H1(sig, seed[0].kernels.copy(), seed[0].biases.copy()),
            nb._H2(sig, seed[1].kernels.copy(), seed[1].biases.copy()),
            nb._Dense(seed[2].weights.copy(), seed[2].bias.copy()),
            nb._Dense(seed[3].weights.copy(), seed[3].bias.copy())]
    x = np.random.uniform(-1, 1, (1, 16, 16))  # one image, the seed's (1, 16, 16) layout
    y_seed, y_mine = x, x.copy()
    for name, s, m in zip(("H1", "H2", "H3", "out"), seed, mine):
        y_seed, y_mine = s.forward(y_seed), m.forward(y_mine)
        np.testing.assert_array_equal(y_mine, y_seed, err_msg=f"{name} forward")

    label, lr = 4, 1e-3
    t = np.eye(10)[label].reshape(10, 1)
    assert nb.loss(y_mine.T, [label]) == seed_ns["loss_mse"](t, y_seed)
    g_seed = seed_ns["loss_mse_derivative"](t, y_seed)
    g_mine = nb.loss_grad_faulty(y_mine.T, [label]).T
    np.testing.assert_array_equal(g_mine, g_seed, err_msg="loss derivative")

    for name, s, m in zip(("out", "H3", "H2", "H1"), seed[::-1], mine[::-1]):
        g_seed, g_mine = s.backward(g_seed, lr), m.backward(g_mine, lr)
        if g_seed is None:  # H1 returns no input gradient, in both
            assert g_mine is None, name
        else:
            np.testing.assert_array_equal(g_mine, g_seed, err_msg=f"{name} input gradient")
    for name, s, m in zip(("H1", "H2", "H3", "out"), seed, mine):
        for attr in ("kernels", "biases") if hasattr(s, "kernels") else ("weights", "bias"):
            np.testing.assert_array_equal(getattr(m, attr), getattr(s, attr),
                                          err_msg=f"{name}.{attr} after the update")
