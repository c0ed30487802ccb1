"""Time one per-pattern SGD step (forward, backward, update; batch of 1) of the NumPy
reference against its PyTorch twin, in one run (issue 2's speed target).

    cd /work/main && python -m benchmarks.bench_step [--samples 60] [--json out.json]

Rows: NumpyNet.sgd_step in float64 (the quoted figure) and float32; the twin's sgd_step in
float64 and float32 with torch.set_num_threads(1) (the quoted figures), then with torch's
default thread count (reported only; timed after the others and with fewer steps, so that
torch's worker threads cannot take time from the quoted rows). Each sample times `--inner`
consecutive steps on one pattern and divides; the quoted rows are sampled round-robin, so a
change in machine load hits all of them alike. Reported per row: median and interquartile
range (IQR) over samples of wall-clock microseconds per step, the median process CPU time
per step (less sensitive to other jobs on the machine), and the ratio twin / NumPy float64
of the wall-clock medians. Target (issue 2): NumPy float64 <= 250 us and >= 5x faster
than the one-thread float64 twin.

The twin is reference/torch_twin.py's TorchNet when it imports, else `_MinimalTwin` below
(the output says which). The pattern is a seeded uniform [-1, 1] image.
ASSUMPTION: a synthetic pattern times as a real digit does (same shapes, same calls).
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
QUOTED_TWIN = "twin float64 threads=1"


class _Timer:
    """Times `inner` consecutive calls of one step function, one sample at a time."""

    def __init__(self, step, inner: int, warmup: int):
        if inner < 1:
            raise ValueError(f"inner must be >= 1, got {inner}")
        self.step, self.inner = step, inner
        self.wall_us: list[float] = []
        self.cpu_us: list[float] = []
        for _ in range(warmup):
            step()

    def one(self) -> None:
        step, n = self.step, self.inner
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            c0, t0 = time.process_time_ns(), time.perf_counter_ns()
            for _ in range(n):
                step()
            t1, c1 = time.perf_counter_ns(), time.process_time_ns()
        finally:
            if gc_was_on:
                gc.enable()
        self.wall_us.append((t1 - t0) / n / 1e3)
        self.cpu_us.append((c1 - c0) / n / 1e3)

    def stats(self) -> dict:
        if not self.wall_us:
            raise ValueError("no samples taken")
        q1, med, q3 = np.percentile(self.wall_us, [25, 50, 75])
        return {"median_us": float(med), "q1_us": float(q1), "q3_us": float(q3),
                "iqr_us": float(q3 - q1), "cpu_median_us": float(np.median(self.cpu_us)),
                "steps_per_sample": self.inner, "samples_us": list(self.wall_us)}


def time_step(step, *, samples: int = 60, inner: int = 50, warmup: int = 20) -> dict:
    """Wall-clock median and IQR, in microseconds per call, of `step()` (no arguments).

    Runs `warmup` calls, then `samples` timings of `inner` consecutive calls each, with
    garbage collection paused during a timing. Returns {"median_us", "q1_us", "q3_us",
    "iqr_us", "cpu_median_us", "steps_per_sample", "samples_us"}.
    """
    timer = _Timer(step, inner, warmup)
    for _ in range(samples):
        timer.one()
    return timer.stats()


class _MinimalTwin:
    """Fallback twin: the same net by torch.autograd, only as far as one SGD step needs."""

    label = "minimal autograd step in benchmarks/bench_step.py"

    def __init__(self, spec: NetSpec, params: Params, dtype: torch.dtype):
        self.spec, self.dtype = spec, dtype
        self.t = {k: torch.tensor(v, dtype=dtype, requires_grad=True)
                  for k, v in params.arrays().items()}
        self.connected = torch.tensor(spec.h2_table).nonzero(as_tuple=True)

    def _squash(self, a):
        return self.spec.act_amplitude * torch.tanh(self.spec.act_slope * a)

    def _conv(self, x, w, b, stride, pad):
        xp = F.pad(x, (pad, pad, pad, pad), value=self.spec.pad_value)
        return self._squash(F.conv2d(xp, w, stride=stride) + b)

    def sgd_step(self, x, labels, lr) -> float:
        s, t = self.spec, self.t
        h = torch.tensor(np.asarray(x), dtype=self.dtype)[:, None]  # (N, 1, 16, 16)
        h = self._conv(h, t["H1.w"], t["H1.b"], s.h1_stride, s.h1_pad)  # (N, 12, 8, 8)
        M, C = s.h2_table.shape
        K = s.h2_kernel
        W2 = torch.zeros(M, C, K, K, dtype=self.dtype).index_put(
            self.connected, t["H2.w"].reshape(-1, K, K))  # (12, 12, 5, 5), 4 blocks zero
        h = self._conv(h, W2, t["H2.b"], s.h2_stride, s.h2_pad)  # (N, 12, 4, 4)
        h = self._squash(h.flatten(1) @ t["H3.w"].T + t["H3.b"])  # (N, 30)
        y = self._squash(h @ t["out.w"].T + t["out.b"])  # (N, 10)
        target = torch.full_like(y, s.target_off)
        target[torch.arange(y.shape[0]), torch.as_tensor(labels)] = s.target_on
        E = ((y - target) ** 2).mean()
        ps = list(t.values())
        with torch.no_grad():
            for p, g in zip(ps, torch.autograd.grad(E, ps)):
                p.sub_(lr * g)
        return E.item()


def make_twin(spec: NetSpec, params: Params, dtype: torch.dtype):
    """(twin, label): reference.torch_twin.TorchNet if it imports, else `_MinimalTwin`."""
    try:
        from reference.torch_twin import TorchNet
    except ImportError:
        return _MinimalTwin(spec, params, dtype), _MinimalTwin.label
    return TorchNet(spec, params, dtype), "reference.torch_twin.TorchNet"


def _dtype_name(dt) -> str:
    return str(dt).removeprefix("torch.") if isinstance(dt, torch.dtype) else np.dtype(dt).name


def run(samples: int = 60, inner: int = 50, warmup: int = 20, seed: int = 0,
        lr: float = 0.01, default_threads: bool = True) -> dict:
    """Time every row; returns a JSON-ready dict (see the module docstring)."""
    if samples < 1 or inner < 1:
        raise ValueError(f"samples and inner must be >= 1, got {samples}, {inner}")
    spec = paper()
    params = init_params(spec, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(1, spec.input_size, spec.input_size))  # (1, 16, 16)
    labels = np.array([int(rng.integers(spec.out_units))])
    torch_default = torch.get_num_threads()
    load_before = os.getloadavg()[0]
    try:
        torch.set_num_threads(1)
        quoted: dict[str, _Timer] = {}
        for dt in (np.float64, np.float32):
            net = NumpyNet(spec, params, dt)
            quoted[f"numpy {_dtype_name(dt)}"] = _Timer(
                lambda net=net: net.sgd_step(x, labels, lr), inner, warmup)
        twins = {}
        for dt in (torch.float64, torch.float32):
            twins[dt], twin_label = make_twin(spec, params, dt)
            quoted[f"twin {_dtype_name(dt)} threads=1"] = _Timer(
                lambda tw=twins[dt]: tw.sgd_step(x, labels, lr), inner, warmup)
        for _ in range(samples):
            for timer in quoted.values():
                timer.one()
        rows = dict(quoted)
        if default_threads and torch_default != 1:
            torch.set_num_threads(torch_default)
            extra = {f"twin {_dtype_name(dt)} threads={torch_default}":
                     _Timer(lambda tw=tw: tw.sgd_step(x, labels, lr), max(1, inner // 10),
                            max(1, warmup // 10)) for dt, tw in twins.items()}
            for _ in range(max(5, samples // 3)):
                for timer in extra.values():
                    timer.one()
            rows.update(extra)
    finally:
        torch.set_num_threads(torch_default)
    load_after = os.getloadavg()[0]

    stats = {name: timer.stats() for name, timer in rows.items()}
    ref = stats["numpy float64"]["median_us"]
    ratios = {name: s["median_us"] / ref for name, s in stats.items() if name.startswith("twin")}
    return {
        "rows": stats,
        "ratio_vs_numpy_float64": ratios,
        "quoted": {"numpy_us": ref, "twin": QUOTED_TWIN,
                   "twin_us": stats[QUOTED_TWIN]["median_us"], "ratio": ratios[QUOTED_TWIN]},
        "target": {"numpy_us_max": TARGET_US, "ratio_min": TARGET_RATIO,
                   "met": bool(ref <= TARGET_US and ratios[QUOTED_TWIN] >= TARGET_RATIO)},
        "twin": twin_label,
        "setup": {"spec": spec.name, "batch": 1, "lr": lr, "seed": seed, "samples": samples,
                  "inner": inner, "warmup": warmup,
                  "order": "numpy and threads=1 twin rows round-robin; default-thread twin "
                           "rows afterwards, max(5, samples // 3) timings of inner // 10"},
        "machine": {
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "cpus": os.cpu_count(),
            "torch_default_threads": torch_default,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "loadavg_1min_before": load_before, "loadavg_1min_after": load_after,
        },
    }


def format_table(res: dict) -> str:
    su, m = res["setup"], res["machine"]
    lines = [
        f"one SGD step, batch 1, spec {su['spec']!r}, {su['samples']} samples x "
        f"{su['inner']} steps; twin: {res['twin']}",
        f"{'row':26s} {'median us':>10s} {'IQR us':>17s} {'cpu us':>9s} {'x numpy f64':>12s}",
    ]
    for name, s in res["rows"].items():
        ratio = res["ratio_vs_numpy_float64"].get(name)
        iqr = f"{s['q1_us']:.1f}-{s['q3_us']:.1f}"
        lines.append(f"{name:26s} {s['median_us']:10.1f} {iqr:>17s} "
                     f"{s['cpu_median_us']:9.1f} {'' if ratio is None else f'{ratio:.1f}':>12s}")
    q, tg = res["quoted"], res["target"]
    lines += [
        f"quoted (wall-clock medians, torch threads=1): numpy float64 {q['numpy_us']:.1f} us, "
        f"{q['twin']} {q['twin_us']:.1f} us, ratio {q['ratio']:.1f}x; target <= "
        f"{tg['numpy_us_max']:.0f} us and >= {tg['ratio_min']:.0f}x: "
        f"{'met' if tg['met'] else 'NOT met'}",
        f"machine: {m['cpus']} cpus, numpy {m['numpy']}, torch {m['torch']} (default threads "
        f"{m['torch_default_threads']}), OPENBLAS_CORETYPE="
        f"{m['OPENBLAS_CORETYPE'] if m['OPENBLAS_CORETYPE'] is not None else '(unset)'}, "
        f"1-min load {m['loadavg_1min_before']:.2f} -> {m['loadavg_1min_after']:.2f}",
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
    if args.samples < 1 or args.inner < 1 or args.warmup < 0:
        print("bench_step: --samples and --inner must be >= 1, --warmup >= 0",
              file=sys.stderr)
        return 2
    res = run(args.samples, args.inner, args.warmup, args.seed,
              default_threads=not args.no_default_threads)
    print(format_table(res))
    if args.json is not None:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=2) + "\n")
        except OSError as e:
            print(f"bench_step: cannot write {args.json}: {e}", file=sys.stderr)
            return 1
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
