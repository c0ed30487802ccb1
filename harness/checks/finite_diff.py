"""Central finite differences: the ground truth that needs no second implementation.

Scheme: g_k = (E(theta + h e_k) - E(theta - h e_k)) / (2 h) with h from
harness.checks.tolerance.fd_step (3e-5 * max(1, |theta_k|), measured there), one entry perturbed
and restored at a time, in float64. The step actually taken is (theta + h) - theta, so that
the rounding of theta + h does not bias the quotient. Truncation error is O(h^2), rounding
error O(eps/h).

Two uses:
- `reference_fd`: dE/dtheta for all 9,760 parameters and dE/dx for every layer's input, of
  the reference's own forward. A parameter of layer L only needs layers L.. re-run, so the
  forward restarts from L's cached input. Input gradients perturb one pattern at a time and
  batch the perturbations (2 copies per entry), since patterns do not interact.
- `layer_fd`: a layer checked against its own forward alone, with the objective
  <dy, forward(x)> for a fixed upstream gradient dy; this is what a candidate layer whose
  parameters do not map onto the paper's is held to.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.checks.tolerance import fd_step


def central_diff(fn: Callable[[], float], arr: np.ndarray,
                 on_change: Callable[[], None] | None = None,
                 entries: np.ndarray | None = None) -> np.ndarray:
    """d fn / d arr, perturbing `arr` in place (it must be a float64 array that fn reads).

    `on_change` is called after every write (e.g. to push the array into a candidate that
    keeps its own copy). `entries` (flat indices) limits the work to a sample; the other
    entries of the result are NaN. `arr` is restored exactly on return, also on error.
    """
    g = np.full(arr.shape, np.nan) if entries is not None else np.zeros(arr.shape)
    flat = arr.reshape(-1)
    if not np.shares_memory(flat, arr):
        raise ValueError(f"central_diff needs a contiguous array it can perturb in place; got "
                         f"shape {arr.shape}, strides {arr.strides}")
    push = on_change or (lambda: None)
    for k in range(flat.size) if entries is None else entries:
        old = flat[k]
        h = fd_step(float(old))
        up, down = old + h, old - h
        try:
            flat[k] = up
            push()
            fp = fn()
            flat[k] = down
            push()
            fm = fn()
        finally:
            flat[k] = old
            push()
        g.flat[k] = (fp - fm) / (up - down)
    return g


def sample_entries(size: int, limit: int | None, seed: int = 0) -> np.ndarray | None:
    """All entries (None) when size <= limit, else `limit` flat indices drawn without
    replacement from a seeded generator."""
    if limit is None or size <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(size, size=limit, replace=False))


def reference_fd(net, x, labels, progress: Callable[[int], None] | None = None):
    """Finite-difference gradients of a NumpyNet (float64) at (x, labels).

    Returns ({param name: dE/dparam}, {layer name: dE/d(layer input)}). `progress(n)` is
    called with the number of entries done since the last call.
    """
    if net.dtype != np.float64:
        raise ValueError("finite differences are taken in float64 only")
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    tick = progress or (lambda n: None)
    layers = net.layers
    inputs = []
    h = x
    for layer in layers:
        inputs.append(h)
        h = layer.forward(h)
    T = net.loss.targets(labels)

    def loss_from(i, h_in, t=T):
        for layer in layers[i:]:
            h_in = layer.forward(h_in)
        return np.mean((h_in - t) ** 2, axis=1)  # per pattern, mean over output units

    param_grads, input_grads = {}, {}
    for i, layer in enumerate(layers):
        for q in ("w", "b"):
            name = f"{layer.name}.{q}"
            param_grads[name] = central_diff(lambda: float(loss_from(i, inputs[i]).mean()),
                                             net.p[name])
            tick(net.p[name].size)
    N = x.shape[0]
    for i, layer in enumerate(layers):
        g = np.zeros_like(inputs[i])
        for n in range(N):
            x_n = inputs[i][n]
            m = x_n.size
            hs = np.array([fd_step(float(v)) for v in x_n.ravel()])
            batch = np.repeat(x_n[None], 2 * m, axis=0).reshape(2 * m, m)
            up, down = x_n.ravel() + hs, x_n.ravel() - hs
            batch[0::2][np.arange(m), np.arange(m)] = up
            batch[1::2][np.arange(m), np.arange(m)] = down
            e = loss_from(i, batch.reshape((2 * m,) + x_n.shape),
                          np.repeat(T[n:n + 1], 2 * m, axis=0))
            g[n] = ((e[0::2] - e[1::2]) / (up - down) / N).reshape(x_n.shape)
            tick(m)
        input_grads[layer.name] = g
    net.forward(x)  # leave the caches as a plain forward would
    return param_grads, input_grads


def fd_entry_count(net, n_patterns: int) -> int:
    params = sum(a.size for a in net.p.values())
    inputs = n_patterns * (256 + 768 + 192 + 30)
    return params + inputs
