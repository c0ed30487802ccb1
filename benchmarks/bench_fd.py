"""The full finite-difference check on one digit: central differences of the float64
reference over all 9,760 parameters and every layer's input (harness/checks/finite_diff.py),
median of a few runs in one process.

    python -m benchmarks.bench_fd [--data ../shared/data/usps] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None) -> int:
    import numpy as np

    from harness.checks.finite_diff import reference_fd
    from harness.data import DataError, load_usps, synthetic_batch
    from reference.numpy_net import NumpyNet
    from reference.params import init_params
    from reference.spec import paper

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_fd")
    p.add_argument("--data", default=None)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    try:
        d = load_usps(a.data)
        x, y, src = d.train_x[:1], d.train_y[:1], d.source
    except DataError:
        x, y = synthetic_batch(1, seed=0)
        src = "synthetic"
    net = NumpyNet(paper(), init_params(paper(), 0), np.float64)
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        reference_fd(net, x, y)
        times.append(time.perf_counter() - t)
    print(f"finite differences, 1 digit ({src}): median {statistics.median(times):.2f} s "
          f"over {a.repeats} runs (min {min(times):.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
