"""Load times of the USPS layouts (medians of a few loads in one process).

    python -m benchmarks.bench_data --data ../shared/data/usps
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None) -> int:
    from harness.data import load_usps

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_data")
    p.add_argument("--data", default=None, help="USPS folder holding both layouts")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    for prefer in ("text", "parquet"):
        times = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            d = load_usps(a.data, prefer=prefer)
            times.append(time.perf_counter() - t)
        print(f"{prefer:<8} median {statistics.median(times):.2f} s over {a.repeats} "
              f"loads ({d.source})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
