"""Time one per-pattern SGD step (forward, backward, update; batch of 1) of the NumPy
reference against its PyTorch twin, in one run (issue 2's speed target).

    cd /work/main && python -m benchmarks.bench_step [--samples 60] [--json out.json]

Rows: NumpyNet.sgd_step in float64 (the quoted figure) and float32; the twin's sgd_step in
float64 and float32 with torch.set_num_threads(1) (the quoted figures) and with torch's
default thread count (reported only; timed after the others, with fewer steps, so that
torch's worker threads cannot take time from the quoted rows). Each sample times `--inner` consecutive steps on the
same pattern and divides; samples of all rows are taken round-robin, so a change in machine
load hits every row alike. Reported: median and interquartile range (IQR) over samples, in
microseconds, and the ratio twin / NumPy of the medians. The target (issue 2) is NumPy
float64 <= 250 us and ratio >= 5 against the one-thread float64 twin.

The twin is reference/torch_twin.py's TorchNet when it imports; otherwise a minimal autograd
step written below (the row label says which). The pattern is a seeded uniform [-1, 1]
image, not a real digit: the step's cost does not depend on pixel values.
ASSUMPTION: a synthetic pattern times the same as a real one (same shapes, same calls).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reference.numpy_net import NumpyNet
from reference.params import Params, init_params
from reference.spec import NetSpec, paper

TARGET_US = 250.0
TARGET_RATIO = 5.0


def time_step(step, *, samples: int = 60, inner: int = 50, warmup: int = 20) -> dict:
    """Median and IQR, in microseconds per call, of `step()` (a zero-argument callable).

    Runs `warmup` calls, then `samples` timings of `inner` consecutive calls each (garbage
    collection paused during a timing). Returns {"median_us", "q1_us", "q3_us", "iqr_us",
    "samples_us"}.
    """
    return _stats(_Timer(step, inner, warmup).sample(samples))


class _Timer:
    """Times `inner` consecutive calls of one step function, one sample at a time."""

    def __init__(self, step, inner: int, warmup: int):
        if inner < 1:
            raise ValueError(f"inner must be >= 1, got {inner}")
        self.step, self.inner = step, inner
        for _ in range(warmup):
            step()

    def one(self) -> float:
        step, n = self.step, self.inner
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            t0 = time.perf_counter_ns()
            for _ in range(n):
                step()
            t1 = time.perf_counter_ns()
        finally:
            if gc_was_on:
                gc.enable()
        return (t1 - t0) / n / 1e3  # us per call

    def sample(self, samples: int) -> list[float]:
        return [self.one() for _ in range(samples)]


def _stats(us: list[float]) -> dict:
    if not us:
        raise ValueError("no samples")
    q1, med, q3 = np.percentile(us, [25, 50, 75])
    return {"median_us": float(med), "q1_us": float(q1), "q3_us": float(q3),
            "iqr_us": float(q3 - q1), "samples_us": [float(u) for u in us]}


class _MinimalTwin:
    """Fallback twin: the same net by torch.autograd, only as far as one SGD step needs."""

    name = "minimal autograd step (bench_step.py)"

    def __init__(self, spec: NetSpec, params: Params, dtype: torch.dtype):
        self.spec, self.dtype = spec, dtype
        self.t = {k: torch.tensor(v, dtype=dtype, requires_grad=True)
                  for k, v in params.arrays().items()}
        self.T2 = torch.as_tensor(spec.h2_table)

    def _conv(self, x, w, b, stride, pad):
        xp = F.pad(x, (pad, pad, pad, pad), value=self.spec.pad_value)
        return self.spec.act_amplitude * torch.tanh(
            self.spec.act_slope * (F.conv2d(xp, w, stride=stride) + b))

    def sgd_step(self, x, labels, lr) -> float:
        s, t = self.spec, self.t
        h = torch.tensor(np.asarray(x), dtype=self.dtype)[:, None]  # (N, 1, 16, 16)
        h = self._conv(h, t["H1.w"], t["H1.b"], s.h1_stride, s.h1_pad)  # (N, 12, 8, 8)
        M, C = self.T2.shape
        K = s.h2_kernel
        W2 = torch.zeros(M, C, K, K, dtype=self.dtype)
        W2 = W2.index_put((self.T2.nonzero(as_tuple=True)), t["H2.w"].reshape(-1, K, K))
        h = self._conv(h, W2, t["H2.b"], s.h2_stride, s.h2_pad)  # (N, 12, 4, 4)
        f = lambda a: s.act_amplitude * torch.tanh(s.act_slope * a)  # noqa: E731
        h = f(h.flatten(1) @ t["H3.w"].T + t["H3.b"])  # (N, 30)
        y = f(h @ t["out.w"].T + t["out.b"])  # (N, 10)
        tgt = torch.full_like(y, s.target_off)
        tgt[torch.arange(y.shape[0]), torch.as_tensor(labels)] = s.target_on
        E = ((y - tgt) ** 2).mean()
        ps = list(t.values())
        g = torch.autograd.grad(E, ps)
        with torch.no_grad():
            for p, gi in zip(ps, g):
                p.sub_(lr * gi)
        return E.item()


def make_twin(spec: NetSpec, params: Params, dtype: torch.dtype):
    """(twin, label): reference/torch_twin.TorchNet if importable, else `_MinimalTwin`."""
    try:
        from reference.torch_twin import TorchNet
    except ImportError:
        return _MinimalTwin(spec, params, dtype), _MinimalTwin.name
    return TorchNet(spec, params, dtype), "reference.torch_twin.TorchNet"


def run(samples: int = 60, inner: int = 50, warmup: int = 20, seed: int = 0,
        lr: float = 0.01, default_threads: bool = True) -> dict:
    """Time every row round-robin; returns a JSON-ready dict (see module docstring)."""
    spec = paper()
    params = init_params(spec, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(1, spec.input_size, spec.input_size))  # (1, 16, 16)
    labels = np.array([int(rng.integers(spec.out_units))])

    torch_default = torch.get_num_threads()
    # phase 1 (quoted): NumPy and one-thread twin rows, round-robin
    rows: dict[str, _Timer] = {}
    torch.set_num_threads(1)
    for dt in (np.float64, np.float32):
        net = NumpyNet(spec, params, dt)
        rows[f"numpy {np.dtype(dt).name}"] = _Timer(
            lambda net=net: net.sgd_step(x, labels, lr), inner, warmup)
    twin_label = None
    twins = {}
    for dt in (torch.float64, torch.float32):
        twin, twin_label = make_twin(spec, params, dt)
        twins[dt] = twin
        rows[f"twin {str(dt).removeprefix('torch.')} threads=1"] = _Timer(
            lambda twin=twin: twin.sgd_step(x, labels, lr), inner, warmup)
    load_before = os.getloadavg()
    us: dict[str, list[float]] = {name: [] for name in rows}
    try:
        for _ in range(samples):
            for name, timer in rows.items():
                us[name].append(timer.one())
        # phase 2 (reported only): the twin at torch's default thread count, after phase 1
        # so that its worker threads cannot steal time from the quoted rows; fewer steps
        if default_threads and torch_default != 1:
            torch.set_num_threads(torch_default)
            rows2 = {f"twin {str(dt).removeprefix('torch.')} threads={torch_default}":
                     _Timer(lambda twin=twin: twin.sgd_step(x, labels, lr),
                            max(1, inner // 10), max(1, warmup // 10))
                     for dt, twin in twins.items()}
            us.update({name: [] for name in rows2})
            for _ in range(max(5, samples // 3)):
                for name, timer in rows2.items():
                    us[name].append(timer.one())
    finally:
        torch.set_num_threads(torch_default)
    load_after = os.getloadavg()

    stats = {name: _stats(v) for name, v in us.items()}
    ref = stats["numpy float64"]["median_us"]
    ratios = {name: s["median_us"] / ref for name, s in stats.items() if name.startswith("twin")}
    quoted_twin = "twin float64 threads=1"
    return {
        "rows": stats,
        "ratio_vs_numpy_float64": ratios,
        "quoted": {"numpy_us": ref, "twin": quoted_twin,
                   "twin_us": stats[quoted_twin]["median_us"], "ratio": ratios[quoted_twin]},
        "target": {"numpy_us_max": TARGET_US, "ratio_min": TARGET_RATIO,
                   "met": bool(ref <= TARGET_US and ratios[quoted_twin] >= TARGET_RATIO)},
        "twin": twin_label,
        "setup": {"spec": spec.name, "batch": 1, "lr": lr, "seed": seed,
                  "samples": samples, "inner": inner, "warmup": warmup,
                  "order": "round-robin over rows, one sample each; default-thread twin rows "
                           "afterwards with samples // 3 timings of inner // 10 steps"},
        "machine": {
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "cpus": os.cpu_count(),
            "torch_default_threads": torch_default,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "loadavg_1min_before": load_before[0], "loadavg_1min_after": load_after[0],
        },
    }


def format_table(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"one SGD step, batch 1, spec {res['setup']['spec']!r}; {res['setup']['samples']} "
        f"samples x {res['setup']['inner']} steps, round-robin",
        f"twin: {res['twin']}",
        f"{'row':28s} {'median us':>10s} {'IQR us':>16s} {'x numpy f64':>12s}",
    ]
    for name, s in res["rows"].items():
        ratio = res["ratio_vs_numpy_float64"].get(name)
        lines.append(f"{name:28s} {s['median_us']:10.1f} "
                     f"{s['q1_us']:7.1f}-{s['q3_us']:<8.1f} "
                     f"{'' if ratio is None else f'{ratio:.1f}':>12s}")
    q, tg = res["quoted"], res["target"]
    lines += [
        f"quoted: numpy float64 {q['numpy_us']:.1f} us; {q['twin']} {q['twin_us']:.1f} us; "
        f"ratio {q['ratio']:.1f}x (target <= {tg['numpy_us_max']:.0f} us and >= "
        f"{tg['ratio_min']:.0f}x: {'met' if tg['met'] else 'NOT met'})",
        f"machine: {m['cpus']} cpus, torch default threads {m['torch_default_threads']}, "
        f"OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE'] or '(unset)'}, "
        f"load avg {m['loadavg_1min_before']:.2f} -> {m['loadavg_1min_after']:.2f}",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=60, help="timings per row (default 60)")
    ap.add_argument("--inner", type=int, default=50, help="steps per timing (default 50)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps per row first")
    ap.add_argument("--seed", type=int, default=0, help="parameter and pattern seed")
    ap.add_argument("--no-default-threads", action="store_true",
                    help="skip the twin rows at torch's default thread count")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    for flag in ("samples", "inner"):
        if getattr(args, flag) < 1:
            print(f"bench_step: --{flag} must be >= 1", file=sys.stderr)
            return 2
    res = run(args.samples, args.inner, args.warmup, args.seed,
              default_threads=not args.no_default_threads)
    print(format_table(res))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
