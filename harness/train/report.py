"""Runs behind reports/train/ (rate sweep, seeds) and the Markdown/JSON writers.

Rate sweep (`sweep`): holds out the last 1,000 training digits, trains on the other 6,291 for
a few passes per grid point and ranks by the held-out MSE after the last pass (ties: error).
It never touches the test set: the runs it makes are given no test digits at all.

Seeds (`run_seeds`): N independent runs (seed s, s+1, ...) through joblib.Parallel. Pointing
joblib at a cluster needs no change here, e.g.

    import joblib
    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")
    with joblib.parallel_config(backend="dask"):
        results = run_seeds(cfg, data, seeds=range(8))

or, with Ray: `from ray.util.joblib import register_ray; register_ray()` and
`joblib.parallel_config(backend="ray")`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import joblib
import numpy as np

from harness.train.loop import TrainConfig, TrainResult, passes_text, train

SWEEP_GRID = {
    ("paper", "sgd"): {"lr": [0.003, 0.01, 0.03, 0.1]},
    ("karpathy", "sgd"): {"lr": [0.01, 0.03, 0.1]},
    ("paper", "sdlm"): {"eta": [3e-4, 1e-3, 3e-3], "mu": [0.005, 0.02, 0.1]},
    ("karpathy", "sdlm"): {"eta": [3e-4, 1e-3, 3e-3], "mu": [0.005, 0.02, 0.1]},
}
SWEEP_HOLDOUT = 1000
SWEEP_PASSES = 3


class _NoTest:
    """The training digits only: the sweep's runs see no test set (an empty one)."""

    def __init__(self, data):
        self.train_x, self.train_y = data.train_x, data.train_y
        self.test_x = np.zeros((0,) + tuple(data.train_x.shape[1:]))
        self.test_y = np.zeros((0,), dtype=np.int64)


def _sweep_one(cfg: TrainConfig, data) -> dict:
    r = train(cfg, data)
    last = r.final("holdout")
    curve = [x for x in r.records if x["split"] == "holdout"]
    return {"preset": cfg.preset, "optimizer": cfg.optimizer, "lr": cfg.lr, "eta": cfg.eta,
            "mu": cfg.mu, "holdout_mse": last["mse"], "holdout_error_pct": last["error_pct"],
            "holdout_misses": last["misses"], "train_mse": r.final("train")["mse"],
            "holdout_mse_curve": [c["mse"] for c in curve],
            "seconds_per_pass": float(np.mean(r.pass_seconds))}


def sweep(data, passes=SWEEP_PASSES, holdout=SWEEP_HOLDOUT, grid=None, n_jobs=2,
          train_limit=None) -> dict:
    """Run the grid; returns {"settings", "runs", "chosen"}. Test digits are never passed in."""
    grid = SWEEP_GRID if grid is None else grid
    blind = _NoTest(data)
    cfgs = []
    for (pre, opt), axes in grid.items():
        names = list(axes)
        for values in itertools.product(*(axes[n] for n in names)):
            cfgs.append(TrainConfig(preset=pre, optimizer=opt, passes=passes,
                                    holdout=holdout, train_limit=train_limit,
                                    **dict(zip(names, values))))
    runs = joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(_sweep_one)(c, blind) for c in cfgs)
    chosen = {}
    for pre, opt in grid:
        mine = [r for r in runs if (r["preset"], r["optimizer"]) == (pre, opt)]
        best = min(mine, key=lambda r: (r["holdout_mse"], r["holdout_error_pct"]))
        keys = ("lr",) if opt == "sgd" else ("eta", "mu")
        chosen[f"{pre}/{opt}"] = {k: best[k] for k in keys}
    settings = {"passes": passes, "holdout": holdout, "train_limit": train_limit,
                "train_digits": (len(data.train_x) - holdout if train_limit is None
                                 else train_limit),
                "criterion": "lowest held-out MSE after the last pass (ties: error %)",
                "grid": {f"{p}/{o}": g for (p, o), g in grid.items()}}
    return {"settings": settings, "runs": runs, "chosen": chosen}


def _seed_one(cfg: TrainConfig, data) -> TrainResult:
    return train(cfg, data)


def run_seeds(cfg: TrainConfig, data, seeds, n_jobs=2) -> list[TrainResult]:
    """One run per seed, in parallel with joblib (any joblib backend: see the module doc)."""
    cfgs = [dataclasses.replace(cfg, seed=int(s)) for s in seeds]
    return joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(_seed_one)(c, data) for c in cfgs)


def seed_summary(results: list[TrainResult]) -> dict:
    """mean, std (ddof=1), min, max of the final figures over seeds, per split."""
    out = {"seeds": [r.config.seed for r in results]}
    for split in ("train", "test"):
        for q in ("mse", "error_pct", "misses"):
            v = np.array([r.final(split)[q] for r in results], dtype=float)
            out[f"{split}_{q}"] = {
                "mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                "min": float(v.min()), "max": float(v.max()), "values": v.tolist()}
    return out


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o)}")


# ---------------------------------------------------------------- analysis of one run

PAPER = {"train": {"mse": 2.5e-3, "error_pct": 0.14, "misses": 10, "n": 7291},
         "test": {"mse": 1.8e-2, "error_pct": 5.0, "misses": 102, "n": 2007},
         "reject_pct_for_1pct_error": 12.1}
REFERENCE_POINTS = [  # (what, train error %, test error %), all after 23 passes (issue 5)
    ("tanh network, 16x16 resampling of MNIST", 0.62, 4.09),
    ("tanh network, these USPS digits, 0/1 targets", 1.14, 5.73),
]


def top_two_margin(out: np.ndarray) -> np.ndarray:
    s = np.sort(out, axis=1)
    return s[:, -1] - s[:, -2]


def rejection_table(out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(% rejected, % error on the accepted) when rejecting the k lowest margins, k = 0..n-1."""
    order = np.argsort(-top_two_margin(out), kind="stable")  # most confident first
    wrong = (out.argmax(axis=1) != y)[order]
    n = len(y)
    kept = np.arange(n, 0, -1)  # accept the top `kept` patterns
    errs = np.cumsum(wrong)[kept - 1]
    return 100.0 * (n - kept) / n, 100.0 * errs / kept


def margin_threshold(out: np.ndarray, y: np.ndarray, target_pct: float = 1.0) -> float:
    """The smallest margin threshold t such that accepting margin >= t gives <= target error."""
    m = top_two_margin(out)
    order = np.argsort(-m, kind="stable")
    wrong = (out.argmax(axis=1) != y)[order]
    err = 100.0 * np.cumsum(wrong) / np.arange(1, len(y) + 1)
    ok = np.flatnonzero(err <= target_pct)
    if not ok.size:
        return float("inf")
    return float(m[order][ok[-1]])


def apply_threshold(out: np.ndarray, y: np.ndarray, t: float) -> dict:
    acc = top_two_margin(out) >= t
    n_acc = int(acc.sum())
    misses = int(np.sum(out[acc].argmax(axis=1) != y[acc]))
    return {"threshold": t, "rejected_pct": 100.0 * (1 - n_acc / len(y)),
            "error_pct_on_accepted": 100.0 * misses / max(n_acc, 1), "misses": misses}


def confusion_matrix(out: np.ndarray, y: np.ndarray) -> np.ndarray:
    cm = np.zeros((10, 10), dtype=int)
    np.add.at(cm, (y, out.argmax(axis=1)), 1)
    return cm


def analyse(result: TrainResult, data, holdout_result: TrainResult | None = None) -> dict:
    """Rejection (threshold on test, as the paper; and on held-out training digits) and the
    confusion matrix of a finished run."""
    from harness.train.loop import Runner
    from reference.spec import preset

    spec = preset(result.config.preset)
    test_x, test_y = np.asarray(data.test_x, float), np.asarray(data.test_y)
    out = Runner(spec, result.params, "numpy", "float64").predict(test_x)
    rej, err = rejection_table(out, test_y)
    on_test = apply_threshold(out, test_y, margin_threshold(out, test_y))
    a = {"test_rejection_threshold_on_test": on_test,
         "confusion_test": confusion_matrix(out, test_y).tolist(),
         "rejection_curve": {"rejected_pct": rej[::4].tolist(), "error_pct": err[::4].tolist()}}
    if holdout_result is not None:
        hc = holdout_result.config
        hx = np.asarray(data.train_x, float)[-hc.holdout:]
        hy = np.asarray(data.train_y)[-hc.holdout:]
        runner = Runner(spec, holdout_result.params, "numpy", "float64")
        t = margin_threshold(runner.predict(hx), hy)
        h_out = runner.predict(test_x)
        a["test_rejection_threshold_on_holdout"] = dict(
            apply_threshold(h_out, test_y, t), holdout=hc.holdout,
            trained_on=len(data.train_x) - hc.holdout,
            test_error_pct_no_rejection=float(100 * np.mean(h_out.argmax(1) != test_y)))
        hrej, herr = rejection_table(h_out, test_y)
        a["rejection_curve_holdout_run"] = {"rejected_pct": hrej[::4].tolist(),
                                            "error_pct": herr[::4].tolist()}
    return a


# ---------------------------------------------------------------- writers


def _rates_text(c: TrainConfig) -> str:
    return f"lr {c.lr:g}" if c.optimizer == "sgd" else f"eta {c.eta:g}, mu {c.mu:g}"


def run_summary(result: TrainResult, analysis: dict | None = None) -> dict:
    c = result.config
    s = {"config": c.to_dict(), "final": {k: result.final(k) for k in ("train", "test")},
         "records": result.records, "hessian_mean_per_pass": result.hessian,
         "seconds_per_pass": result.pass_seconds, "params_sha256": result.params.checksum()}
    if analysis is not None:
        s["analysis"] = analysis
    return s


def final_table(rows: list[tuple[str, dict | None, dict | None, str]]) -> list[str]:
    """Markdown rows: label, train final, test final, 1%-error rejection text."""
    out = ["| run | train MSE | train error | train misses | test MSE | test error | "
           "test misses | rejected for 1% test error |", "|---|---|---|---|---|---|---|---|"]
    for label, tr, te, rej in rows:
        def cells(r):
            if r is None:
                return ["-", "-", "-"]
            mse = f"{r['mse']:.2e}" if r.get("mse") is not None else "-"
            mis = f"{r['misses']}" if r.get("misses") is not None else "-"
            return [mse, f"{r['error_pct']:.2f}%", mis]
        out.append("| " + " | ".join([label] + cells(tr) + cells(te) + [rej]) + " |")
    return out


def paper_rows() -> list[tuple]:
    rows = [("paper (LeCun et al. 1989)", PAPER["train"], PAPER["test"],
             f"{PAPER['reject_pct_for_1pct_error']}% (threshold set on test)")]
    for what, tr, te in REFERENCE_POINTS:
        rows.append((f"reference point: {what}", {"error_pct": tr}, {"error_pct": te}, "-"))
    return rows


def gaps(result: TrainResult) -> list[str]:
    lines = []
    for split in ("train", "test"):
        f, p = result.final(split), PAPER[split]
        lines.append(
            f"- {split}: MSE {f['mse']:.2e} vs paper {p['mse']:.1e} "
            f"({f['mse'] / p['mse']:.2f}x); error {f['error_pct']:.2f}% vs {p['error_pct']}% "
            f"({f['error_pct'] - p['error_pct']:+.2f} points); misses {f['misses']} vs "
            f"{p['misses']} ({f['misses'] - p['misses']:+d})")
    return lines


def write_run_report(result: TrainResult, data, out_dir: str | Path,
                     analysis: dict | None = None, name: str | None = None) -> Path:
    """report.md, results.json, curves.png, rejection.png, confusion.png for one run."""
    from harness.train import figures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = result.config
    name = name or f"{c.preset} preset, {c.optimizer.upper()} ({_rates_text(c)})"
    if analysis is None:
        analysis = analyse(result, data)
    write_json(out / "results.json", run_summary(result, analysis))
    figures.learning_curves(result.records, name, out / "curves.png")
    r = analysis["test_rejection_threshold_on_test"]
    figures.rejection_curve(
        {"this run": (np.array(analysis["rejection_curve"]["rejected_pct"]),
                      np.array(analysis["rejection_curve"]["error_pct"]))},
        name, out / "rejection.png", {f"this run: {r['rejected_pct']:.1f}%": r["rejected_pct"]})
    figures.confusion(np.array(analysis["confusion_test"]), f"test confusion: {name}",
                      out / "confusion.png")
    rej = f"{r['rejected_pct']:.1f}% (threshold set on test)"
    lines = [f"# Training run: {name}", "",
             f"{passes_text(c.passes)}, seed {c.seed}, {c.impl} implementation ({c.dtype}), "
             f"{result.final('train')['n']} training digits, data {getattr(data, 'source', '?')}.",
             ""] + final_table(paper_rows() + [("this run", result.final("train"),
                                                  result.final("test"), rej)])
    lines += ["", "Gaps to the paper:"] + gaps(result) + [
        "", "The 1%-error rejection threshold here is chosen on the test set itself, as the "
        "paper did; reports/train/README.md also gives it with the threshold set on held-out "
        "training digits.", "", "![learning curves](curves.png)", "",
        "![rejection](rejection.png)", "", "![confusion](confusion.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"


def sweep_markdown(s: dict, defaults: dict) -> str:
    st = s["settings"]
    lines = ["# Rate sweep (training digits only)", "",
             f"Each grid point trains for {passes_text(st['passes'])} on the first "
             f"{st['train_digits']} training digits and is scored on the last {st['holdout']} "
             f"training digits, held out. The test digits are never given to these runs "
             f"(tests/test_train.py::test_sweep_never_reads_the_test_set guards this). "
             f"Criterion: {st['criterion']}. Seed 0, NumPy reference, float64.", "",
             "| preset / optimizer | setting | held-out MSE per pass | held-out error | "
             "held-out misses | train MSE | s / pass |", "|---|---|---|---|---|---|---|"]
    for r in sorted(s["runs"], key=lambda r: (r["preset"], r["optimizer"], r["holdout_mse"])):
        key = f"{r['preset']}/{r['optimizer']}"
        setting = (f"lr {r['lr']:g}" if r["optimizer"] == "sgd"
                   else f"eta {r['eta']:g}, mu {r['mu']:g}")
        chosen = s["chosen"][key] == {k: r[k] for k in s["chosen"][key]}
        curve = " / ".join(f"{v:.4f}" for v in r["holdout_mse_curve"])
        lines.append(f"| {key} | {'**' + setting + '** (chosen)' if chosen else setting} | "
                     f"{curve} | {r['holdout_error_pct']:.1f}% | {r['holdout_misses']} | "
                     f"{r['train_mse']:.4f} | {r['seconds_per_pass']:.1f} |")
    lines += ["", "Chosen (these are harness.train.DEFAULT_RATES):", ""]
    for key, v in s["chosen"].items():
        same = "" if defaults.get(key) == v else f" (DEFAULT_RATES has {defaults.get(key)})"
        axes = st["grid"].get(key, {})
        edge = [k for k, x in v.items() if k in axes and x in (min(axes[k]), max(axes[k]))]
        note = f" ({', '.join(edge)} at the edge of the grid)" if edge else ""
        lines.append(f"- {key}: " + ", ".join(f"{k} = {x:g}" for k, x in v.items()) + same
                     + note)
    lines += ["", "Why: the lowest held-out MSE after the last sweep pass. Caveat: a "
              f"{st['passes']}-pass horizon favours larger rates than a 23-pass run might; "
              "the learning curves of the full runs show whether they overshoot later.", ""]
    return "\n".join(lines)


def lockstep_lines(ls: dict) -> list[str]:
    lines = ["| twin dtype | max rel. diff after pass 1 | after the last pass | max over "
             "passes | per layer at the end |", "|---|---|---|---|---|"]
    for dt, r in ls.items():
        d = r["rel_diff"]
        per = ", ".join(f"{L} {v:.1e}" for L, v in d[-1].items())
        lines.append(f"| {dt} | {max(d[0].values()):.2e} | {max(d[-1].values()):.2e} | "
                     f"{r['max_rel_diff']:.2e} | {per} |")
    return lines


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _final_row(label: str, run: dict) -> tuple:
    a = run["analysis"]["test_rejection_threshold_on_test"]
    return (label, run["final"]["train"], run["final"]["test"],
            f"{a['rejected_pct']:.1f}% (threshold set on test)")


def _holdout_lines(runs: dict) -> list[str]:
    """What setting the rejection threshold on held-out training digits did, from the runs'
    own figures (not a fixed sentence)."""
    out = []
    for key, run in runs.items():
        h = run["analysis"].get("test_rejection_threshold_on_holdout")
        t = run["analysis"]["test_rejection_threshold_on_test"]
        if not h:
            continue
        verb = "leaves more than" if h["error_pct_on_accepted"] > 1.0 else "reaches"
        out.append(f"- {key}: the threshold set on held-out training digits rejects "
                   f"{h['rejected_pct']:.1f}% of the test digits (on test: "
                   f"{t['rejected_pct']:.1f}%) and {verb} 1% error on the accepted ones "
                   f"({h['error_pct_on_accepted']:.2f}%)")
    if out:
        out = ["Rejection thresholds set on held-out training digits, applied to the test "
               "set (a threshold set on the test set itself, as the paper did, is tuned to "
               "the digits it is judged on):", ""] + out + [""]
    return out


def _effective_rate_lines(runs: dict) -> list[str]:
    """For each SDLM run: each tensor's step eta / (mu + h) at its mean h, as a multiple of
    eta / mu, after the first and the last pass (from results.json's recorded h means)."""
    out = []
    for key, run in runs.items():
        c, hs = run["config"], run.get("hessian_mean_per_pass")
        if c["optimizer"] != "sdlm" or not hs:
            continue
        mu, first, last = c["mu"], hs[0], hs[-1]
        out += [f"What the diagonal does to the steps of {key} (mu {mu:g}): each tensor's "
                f"step at its mean h, as a multiple of eta / mu = {c['eta'] / mu:g}, the "
                "step every parameter would take if h were 0.", "",
                "| tensor | mean h, pass 1 | step / (eta/mu) | mean h, last pass | "
                "step / (eta/mu) |", "|---|---|---|---|---|"]
        for k in first:
            out.append(f"| {k} | {first[k]:.2e} | {mu / (mu + first[k]):.3f} | "
                       f"{last[k]:.2e} | {mu / (mu + last[k]):.3f} |")
        hidden = [mu / (mu + h[k]) for h in (first, last) for k in h
                  if not k.startswith("out")]
        out += ["", f"Below the output layer h is small next to mu: those steps stay between "
                f"{min(hidden):.2f} and {max(hidden):.2f} of eta / mu at their mean h, so "
                "there SDLM is close to plain SGD at rate eta / mu; the output layer is where "
                "it sets rates of its own. (Single entries spread further than the means.)",
                ""]
    return out


def write_summary(out: Path) -> Path:
    """reports/train/README.md (and rejection.png) from the JSON files in `out`."""
    from harness.train import figures

    runs, seeds = _load(out / "runs.json") or {}, _load(out / "seeds.json")
    lock, bench = _load(out / "lockstep.json"), _load(out / "bench.json")
    L = ["# Training on the USPS digits: the paper's table, reproduced or not", "",
         "Regenerate everything here (tens of minutes on 2 cores):", "",
         "    python -m harness.train.cli --regenerate-reports", "",
         "Every run: per-pattern updates over the training digits in file order, 23 passes, "
         "NumPy reference in float64, seed 0 unless stated. Rates come from the sweep on "
         "held-out training digits ([sweep.md](sweep.md)); the test set was never used to "
         "choose anything.", "",
         "A run repeats bit for bit on one machine, interrupted and resumed too "
         "(tests/test_train.py). On another machine the float64 rounding can differ in the "
         "last digits, and with it the parameters' bits.", "",
         "## Final figures after 23 passes", ""]
    rows = paper_rows()
    for key, run in runs.items():
        c = run["config"]
        rates = (f"lr {c['lr']:g}" if c["optimizer"] == "sgd"
                 else f"eta {c['eta']:g}, mu {c['mu']:g}")
        rows.append(_final_row(f"this repo: {key} ({rates})", run))
    if seeds:
        s = seeds["summary"]

        def ms(q, split):
            v = s[f"{split}_{q}"]
            f = "{:.2e}" if q == "mse" else ("{:.2f}%" if q == "error_pct" else "{:.1f}")
            return (f"{f.format(v['mean'])} ± {f.format(v['std'])} "
                    f"({f.format(v['min'])}–{f.format(v['max'])})")
        L += final_table(rows)
        L += ["", f"{len(s['seeds'])} seeds ({s['seeds']}) of the paper preset with SDLM, "
              "mean ± std (min–max):", "", "| split | MSE | error | misses |",
              "|---|---|---|---|"]
        for split in ("train", "test"):
            L.append(f"| {split} | {ms('mse', split)} | {ms('error_pct', split)} | "
                     f"{ms('misses', split)} |")
    else:
        L += final_table(rows)
    L += ["", "Reference points are from the issue (a tanh network after 23 passes); only "
          "error rates are given for them.", "", "## Gaps to the paper", ""]
    for key, run in runs.items():
        L.append(f"{key}:")
        for split in ("train", "test"):
            f, p = run["final"][split], PAPER[split]
            L.append(f"- {split}: MSE {f['mse']:.2e} vs {p['mse']:.1e} "
                     f"({f['mse'] / p['mse']:.2f}x), error {f['error_pct']:.2f}% vs "
                     f"{p['error_pct']}% ({f['error_pct'] - p['error_pct']:+.2f} points), "
                     f"misses {f['misses']} vs {p['misses']} ({f['misses'] - p['misses']:+d})")
        a = run["analysis"]
        t, h = a["test_rejection_threshold_on_test"], a.get("test_rejection_threshold_on_holdout")
        L.append(f"- rejection for 1% test error: {t['rejected_pct']:.1f}% with the threshold "
                 f"set on the test set (as the paper did) vs the paper's 12.1% "
                 f"({t['rejected_pct'] - 12.1:+.1f} points)")
        if h:
            L.append(f"- with the threshold set on {h['holdout']} held-out training digits "
                     f"(a companion run trained on the other {h['trained_on']}; test error "
                     f"{h['test_error_pct_no_rejection']:.2f}% without rejection): "
                     f"{h['rejected_pct']:.1f}% of the test digits rejected, "
                     f"{h['error_pct_on_accepted']:.2f}% error on the accepted ones")
        L.append("")
    curves = {}
    for key, run in runs.items():
        a = run["analysis"]
        curves[f"{key}, on test"] = (a["rejection_curve"]["rejected_pct"],
                                     a["rejection_curve"]["error_pct"])
        if "rejection_curve_holdout_run" in a:
            curves[f"{key}, hold-out run"] = (a["rejection_curve_holdout_run"]["rejected_pct"],
                                              a["rejection_curve_holdout_run"]["error_pct"])
    if curves:
        figures.rejection_curve(curves, "test error against rejection (top-two margin)",
                                out / "rejection.png")
        L += ["## Figures", "", "![rejection](rejection.png)", ""]
        for key in runs:
            d = key.replace("/", "-")
            L += [f"{key}: [report]({d}/report.md)", "", f"![curves]({d}/curves.png)",
                  f"![confusion]({d}/confusion.png)", ""]
    if lock:
        L += ["## Lockstep: NumPy reference vs the autograd twin", "",
              "Both start from the same weights and see the same patterns in the same order "
              f"(paper preset, SDLM, {passes_text(lock['float64']['config']['passes'])} "
              "over the "
              f"first {lock['float64']['train_digits']} training digits; each side estimates "
              "its own diagonal on the same Hessian patterns). After every pass: per layer, "
              "max |ref - twin| / max |ref| over its weights and biases." + (
                  "" if lock["float64"]["train_digits"] >= 7291 else
                  " Only a subset of the digits: NOT RUN on all 7,291 (set LOCKSTEP_DIGITS "
                  "in harness/train/cli.py)."), ""] + lockstep_lines(lock) + [
              "", f"Stated bound for float64: 1e-9 over 23 passes; measured maximum "
              f"{lock['float64']['max_rel_diff']:.1e}.", "", "![lockstep](lockstep.png)", ""]
    if bench:
        L += ["## Speed (benchmarks/bench_train.py)", "", "| optimizer | one pass | eval | "
              "23 passes (projected) | us / digit |", "|---|---|---|---|---|"]
        for opt in ("sgd", "sdlm"):
            b = bench[opt]
            L.append(f"| {opt} | {b['train_pass_s']:.2f} s | {b['eval_s']:.2f} s | "
                     f"{b['projected_23_passes_s']:.0f} s | {b['us_per_pattern']:.0f} |")
        L += ["", f"SDLM / SGD per pass: {bench['sdlm_over_sgd']:.2f}x (target <= 2x). Target "
              f"for 23 passes: < 60 s. Load average during the benchmark: "
              f"{bench['machine']['load_avg_1min']:.1f} on {bench['machine']['cpus']} CPUs.", ""]
    if bench and lock:
        ok = lambda c: "met" if c else "NOT met"  # noqa: E731
        sg, sd = bench["sgd"]["projected_23_passes_s"], bench["sdlm"]["projected_23_passes_s"]
        L += ["## Issue 5 targets", "",
              f"- 23 passes < 60 s: SGD {sg:.0f} s ({ok(sg < 60)}), SDLM {sd:.0f} s "
              f"({ok(sd < 60)}); the per-pattern step lives in reference/numpy_net.py",
              f"- SDLM within 2x of SGD: {bench['sdlm_over_sgd']:.2f}x "
              f"({ok(bench['sdlm_over_sgd'] <= 2)})",
              f"- lockstep float64 bound 1e-9: {lock['float64']['max_rel_diff']:.1e} "
              f"({ok(lock['float64']['max_rel_diff'] < 1e-9)}, on "
              f"{lock['float64']['train_digits']} digits)", ""]
    L += _holdout_lines(runs)
    L += ["## The optimizer", "", "SDLM as LeCun et al. (1998) App. C write it: "
          "step_k = eta / (mu + h_kk), h_kk the back-propagated Gauss-Newton diagonal "
          "(reference/sdlm.py), re-estimated on 500 training digits drawn by a seeded "
          "generator before every pass; eta and mu constant (ASSUMPTION: the 1998 schedule "
          "of decreasing eta is not in the 1989 paper). For `out` and `H3` it equals the exact "
          "Gauss-Newton diagonal diag(J^T (2/10) J) (tests/test_sdlm.py, rtol 1e-10). In H2 "
          "and H1 it drops the cross terms between positions that share a weight, so there "
          "it is an approximation: the test checks only that its sum over a layer is within "
          "a factor 2 of the exact one; single entries can differ by far more.", ""]
    L += _effective_rate_lines(runs)
    L += ["## Seeds on a cluster", "", "`--seeds N` runs through joblib; to send the runs to a "
          "Dask or Ray cluster wrap the call in `joblib.parallel_config(backend=\"dask\")` "
          "(after `Client(...)`) or `backend=\"ray\"` (after `ray.util.joblib.register_ray()`),"
          " see harness/train/report.py.", ""]
    (out / "README.md").write_text("\n".join(L))
    return out / "README.md"
