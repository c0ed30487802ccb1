"""Time one training pass over the 7,291 USPS digits: SGD vs SDLM, NumPy reference.

    python benchmarks/bench_train.py [--data DIR] [--repeats 3] [--json reports/train/bench.json]

Per optimizer: the median over `repeats` one-pass runs of the training time (SDLM includes
its 500-pattern diagonal estimate) and of the evaluation of train + test after the pass;
a 23-pass run is projected as 23 x (train + eval). Targets (issue 5): 23 passes < 60 s,
SDLM within 2x of SGD.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.data import load_usps  # noqa: E402
from harness.train.loop import TrainConfig, train  # noqa: E402


def bench(data, repeats: int = 3, preset: str = "paper") -> dict:
    out = {}
    for opt in ("sgd", "sdlm"):
        tr, ev = [], []
        for _ in range(repeats):
            r = train(TrainConfig(preset=preset, optimizer=opt, passes=1), data)
            tr.append(r.pass_seconds[0])
            ev.append(r.eval_seconds[0])
        t, e = statistics.median(tr), statistics.median(ev)
        out[opt] = {"train_pass_s": t, "eval_s": e, "projected_23_passes_s": 23 * (t + e),
                    "train_pass_runs_s": tr, "eval_runs_s": ev,
                    "us_per_pattern": 1e6 * t / len(data.train_x)}
    out["sdlm_over_sgd"] = out["sdlm"]["train_pass_s"] / out["sgd"]["train_pass_s"]
    out["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                      "load_avg_1min": os.getloadavg()[0],
                      "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    a = p.parse_args(argv)
    res = bench(load_usps(a.data), a.repeats)
    for opt in ("sgd", "sdlm"):
        r = res[opt]
        print(f"{opt:4s}  one pass {r['train_pass_s']:.2f} s ({r['us_per_pattern']:.0f} us/digit)"
              f"  eval {r['eval_s']:.2f} s  ->  23 passes ~ {r['projected_23_passes_s']:.0f} s"
              f"  (target < 60 s)")
    print(f"SDLM / SGD per pass: {res['sdlm_over_sgd']:.2f}x (target <= 2x); "
          f"load average {res['machine']['load_avg_1min']:.1f} on {res['machine']['cpus']} CPUs")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
