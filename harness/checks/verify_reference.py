"""Reference against twin against finite differences, layer by layer.

For each layer L in H1, H2, H3, out, and each quantity:
    activation   the twin's output of L vs the reference's (each fed by itself)
    weight_grad  dE/dL.w:  twin vs reference, reference vs FD, twin vs FD
    bias_grad    dE/dL.b:  the same three
    input_grad   dE/d(input of L): the same three
and the loss, a layer too, at the reference's output y:
    activation   E:        twin vs reference
    loss_grad    dE/dy:    twin vs reference, reference vs FD, twin vs FD
FD is always the float64 reference's own forward (harness/checks/finite_diff.py). Both nets are
built from one Params by value; that the Params was left unchanged is a check too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.checks.compare import FAIL, PASS, Check, compare
from harness.checks.finite_diff import central_diff, fd_entry_count, reference_fd
from harness.checks.tolerance import tolerance_for
from reference.numpy_net import NumpyNet
from reference.params import LAYERS, Params

QUANTITIES = (("weight_grad", "w"), ("bias_grad", "b"))


def layer_activations(layers, x) -> dict[str, np.ndarray]:
    out, h = {}, x
    for layer in layers:
        h = layer.forward(h)
        out[layer.name] = np.asarray(h)
    return out


def unit_signal_scales(net64, x) -> dict[str, float]:
    """Max |gradient| of every tensor when every output is off its target by 1 (the loss
    derivative 2 / (N * 10) everywhere), from the float64 reference: the scale that the
    rounding of y - t is multiplied by on its way back (see harness/checks/tolerance.py)."""
    y = net64.forward(np.asarray(x, dtype=np.float64))
    grads, dxs = net64.backward(np.full_like(y, 2.0 / y.size), need_input_grad=True)
    out = {k: float(np.max(np.abs(v))) for k, v in grads.items()}
    out.update({f"{k}.x": float(np.max(np.abs(v))) for k, v in dxs.items()})
    return out


def run_reference_checks(spec, params: Params, x, labels, dtype=np.float64,
                         twin_factory: Callable | None = None,
                         progress: Callable[[int, int], None] | None = None,
                         fd=None) -> list[Check]:
    """All checks of the reference against its twin and against finite differences.

    `progress(done, total)` is called as finite differences advance. `fd`, the result of
    `reference_fd` at the same point, skips recomputing them (e.g. for a second dtype).
    """
    dt = np.dtype(dtype).name
    before = params.checksum()
    ref = NumpyNet(spec, params, dtype)
    if twin_factory is None:
        from reference.torch_twin import TorchNet as twin_factory
    import torch

    twin = twin_factory(spec, params, dtype=getattr(torch, dt))
    ref64 = ref if dt == "float64" else NumpyNet(spec, params, np.float64)

    x = np.asarray(x, dtype=np.float64)
    checks: list[Check] = []
    t_twin = tolerance_for("twin", dt)
    t_fd = tolerance_for("finite_diff", dt)

    act_ref = layer_activations(ref.layers, x.astype(dt))
    act_twin = layer_activations(twin.layers, x.astype(dt))
    _, g_ref, dx_ref = ref.loss_and_grads(x, labels, need_input_grad=True)
    _, g_twin, dx_twin = twin.loss_and_grads(x, labels)

    total = fd_entry_count(ref64, len(x))
    done = [0]

    def tick(n):
        done[0] += n
        if progress:
            progress(done[0], total)

    g_fd, dx_fd = fd if fd is not None else reference_fd(ref64, x, labels, progress=tick)
    unit = unit_signal_scales(ref64, x)

    for L in LAYERS:
        checks.append(compare(act_twin[L], act_ref[L], t_twin, L, "activation", "twin",
                              subject="reference", mode="chain", group_axis=1))
        pairs = [(q, g_ref[f"{L}.{k}"], g_twin[f"{L}.{k}"], g_fd[f"{L}.{k}"], 0,
                  unit[f"{L}.{k}"]) for q, k in QUANTITIES]
        pairs.append(("input_grad", dx_ref[L], dx_twin[L], dx_fd[L], 1, unit[f"{L}.x"]))
        for q, a_ref, a_twin, a_fd, axis, u in pairs:
            kw = dict(mode="chain", group_axis=axis, signal_scale=u)
            checks.append(compare(a_twin, a_ref, t_twin, L, q, "twin", subject="reference",
                                  **kw))
            checks.append(compare(a_ref, a_fd, t_fd, L, q, "finite_diff", subject="reference",
                                  **kw))
            checks.append(compare(a_twin, a_fd, t_fd, L, q, "finite_diff", subject="twin",
                                  **kw))

    checks += _loss_checks(ref, ref64, twin, act_ref["out"], labels, t_twin, t_fd)
    after = params.checksum()
    c = Check("all", "params_unchanged", "checksum", subject="shared parameters")
    c.status = PASS if after == before else FAIL
    c.reason = "" if c.ok else "the shared parameter set changed during the run"
    checks.append(c)
    return checks


def _loss_checks(ref, ref64, twin, y, labels, t_twin, t_fd) -> list[Check]:
    """E and dE/dy of both nets at the reference's output y; FD of the float64 loss."""
    y64 = np.array(y, dtype=np.float64)
    dy_fd = central_diff(lambda: ref64.loss.value(y64, labels), y64)
    dy_ref, dy_twin = ref.loss.grad(y, labels), twin.loss_grad(y, labels)
    # dE/dy if every output were off its target by 1: the scale of rounding near the target
    kw = dict(mode="chain", signal_scale=2.0 / y64.size)
    return [
        compare(np.array([twin.loss(y, labels)]), np.array([ref.loss.value(y, labels)]),
                t_twin, "loss", "activation", "twin", subject="reference", mode="chain"),
        compare(dy_twin, dy_ref, t_twin, "loss", "loss_grad", "twin", subject="reference",
                **kw),
        compare(dy_ref, dy_fd, t_fd, "loss", "loss_grad", "finite_diff", subject="reference",
                **kw),
        compare(dy_twin, dy_fd, t_fd, "loss", "loss_grad", "finite_diff", subject="twin",
                **kw),
    ]
