"""`verify train`: full training on the USPS digits, with a progress bar and a report.

    verify train --data ../shared/data/usps                     # paper preset, SDLM, 23 passes
    verify train --preset karpathy --optimizer sgd --out runs/k
    verify train --out runs/p --resume                          # continue after a crash
    verify train --out runs/p --overwrite                       # start runs/p over
    verify train --seeds 5                                      # 5 seeds in parallel (joblib)
    python -m harness.train.cli --regenerate-reports            # everything in reports/train/

Prints one fixed-format line per split per pass (harness.train.loop.format_record) and writes
report.md, results.json and PNGs into --out.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from harness.train.checkpoint import STATE_FILE, CheckpointError

DEFAULT_OPTIMIZER = {"paper": "sdlm", "karpathy": "sgd"}
# what one run writes into --out besides checkpoint/ (harness.train.report.write_run_report
# and harness.train.loop.train); --overwrite removes them before starting again
RUN_FILES = ("report.md", "results.json", "curves.png", "rejection.png", "confusion.png",
             "params_final.npz")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train on the USPS digits and compare with the paper's table",
        description="Per-sample training over the USPS training digits in file order, "
        "evaluated after every pass, checkpointed atomically, reported against the paper.")
    _add_options(p)
    p.set_defaults(run=run)
    return p


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="folder with the USPS digits (default: "
                   "$USPS_DATA, ./data/usps, ../shared/data/usps, then the hub)")
    p.add_argument("--preset", choices=["paper", "karpathy"], default=None,
                   help="default: paper (with --resume: the checkpoint's)")
    p.add_argument("--optimizer", choices=["sgd", "sdlm"], default=None,
                   help="default: sdlm for the paper preset, sgd for karpathy")
    p.add_argument("--lr", type=float, default=None, help="SGD rate (default: from the sweep)")
    p.add_argument("--eta", type=float, default=None, help="SDLM eta (default: the sweep's)")
    p.add_argument("--mu", type=float, default=None, help="SDLM mu (default: the sweep's)")
    p.add_argument("--passes", type=int, default=None,
                   help="default 23 (with --resume: the checkpoint's; more extends the run)")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--seeds", type=int, default=1, help="run N seeds (seed, seed+1, ...) in "
                   "parallel with joblib and report mean, std, min and max")
    p.add_argument("--jobs", type=int, default=2, help="joblib workers for --seeds")
    p.add_argument("--train-limit", type=int, default=None,
                   help="train on the first N training digits only")
    p.add_argument("--holdout", type=int, default=None,
                   help="hold out the last N training digits (evaluated, never trained on)")
    p.add_argument("--impl", choices=["numpy", "twin"], default=None, help="default: numpy")
    p.add_argument("--dtype", choices=["float64", "float32"], default=None,
                   help="default: float64")
    p.add_argument("--out", default=None, help="output folder (default: runs/train-PRESET-"
                   "OPTIMIZER)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --out, with its settings; options "
                   "given again must agree with them, except --passes, which may extend it")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in an --out that holds another run's checkpoint "
                   "or outputs (report.md, results.json, ...), replacing them (without it "
                   "such a folder is refused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _config(args, saved: dict | None = None):
    """The run's settings: the options given, else the checkpoint's (`saved`, on --resume),
    else the defaults. Rates that the chosen optimizer does not use are refused."""
    from harness.train.loop import TrainConfig

    base = saved or {}

    def pick(name, default):
        v = getattr(args, name)
        return v if v is not None else base.get(name, default)

    preset = pick("preset", "paper")
    opt = pick("optimizer", None) or DEFAULT_OPTIMIZER[preset]
    unused = ["--lr"] if opt == "sdlm" else ["--eta", "--mu"]
    given = [o for o in unused if getattr(args, o[2:]) is not None]
    if given:
        raise ValueError(f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not "
                         f"apply to --optimizer {opt} (SGD takes --lr, SDLM --eta and --mu)")
    keep = ("lr",) if opt == "sgd" else ("eta", "mu")
    rates = {k: (getattr(args, k) if k in keep else None) for k in ("lr", "eta", "mu")}
    rates.update({k: base[k] for k in keep if getattr(args, k) is None and k in base})
    return TrainConfig(preset=preset, optimizer=opt, passes=pick("passes", 23),
                       seed=pick("seed", 0), train_limit=pick("train_limit", None),
                       holdout=pick("holdout", 0), impl=pick("impl", "numpy"),
                       dtype=pick("dtype", "float64"),
                       hessian_patterns=base.get("hessian_patterns", 500), **rates).resolved()


def _state_path(out: Path) -> Path:
    return out / "checkpoint" / STATE_FILE


def _saved_state(args) -> dict | None:
    """The checkpoint state in --out (for --resume), checked field by field; None without
    --resume. ValueError (naming the file) when there is none or it cannot be used."""
    from harness.train.checkpoint import check_saved_state

    if not args.resume:
        return None
    if args.out is None:
        raise ValueError("--resume needs --out, the folder of the run to continue")
    state = _state_path(Path(args.out))
    if not state.exists():
        raise ValueError(f"--resume: no checkpoint at {state}; nothing to continue (run "
                         "without --resume to start a new run there)")
    try:
        doc = json.loads(state.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{state}: not a readable checkpoint ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{state}: not a readable checkpoint (a JSON {type(doc).__name__}, "
                         "not an object)")
    check_saved_state(doc, state)
    return doc


def _what_checkpoint(out: Path) -> str:
    """'a checkpoint after pass 3 of 10', as far as out's checkpoint state can be read."""
    try:
        doc = json.loads(_state_path(out).read_text())
        return f"a checkpoint after pass {doc['pass_index']} of {doc['config']['passes']}"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"a checkpoint that cannot be read ({e})"


def _check_out(args, out: Path, cfg, saved: dict | None) -> None:
    """Refuse (ValueError) to start over a run's checkpoint, or over outputs that no
    checkpoint accounts for, without --overwrite, and to resume with fewer --passes than the
    checkpoint has completed."""
    from harness.train.loop import passes_text

    if args.overwrite and args.resume:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it; "
                         "give one of them")
    state = _state_path(out)
    if not args.resume and not args.overwrite and state.exists():
        raise ValueError(f"{out} already holds a run: {_what_checkpoint(out)} ({state}). "
                         f"Give --resume to continue it, or --overwrite to start again there "
                         f"(replacing it); nothing was changed")
    if not args.resume and not args.overwrite:
        _check_no_outputs(out)
    done = saved["pass_index"] if saved else 0
    if args.passes is not None and args.passes < done:
        raise ValueError(f"{out}: its checkpoint has completed {passes_text(done)} and "
                         f"--passes {args.passes} asks for fewer; a run cannot be shortened "
                         f"(give --passes {done} or more, or another --out); nothing was "
                         f"changed")


def _check_no_outputs(out: Path) -> None:
    """A new run (no checkpoint in `out`): refuse when `out` holds files it would replace
    (RUN_FILES), as they are not this run's: a run whose checkpoint/ was deleted, or some
    other tool's output."""
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found:
        raise ValueError(f"{out} already holds {', '.join(found)} but no checkpoint "
                         f"({_state_path(out)} is missing), so they are not of this run and "
                         f"cannot be resumed. Give --overwrite to start a new run there "
                         f"(replacing them), or another --out; nothing was changed")


def _check_data(saved: dict | None, out: Path, cfg, data) -> None:
    """Before a word about the run is printed: the splits it asks for exist and, on
    --resume, everything the run will read from the checkpoint agrees with it (parameter
    file, settings, the identity of the digits); a note on stderr when the checkpoint is
    older than the data identity."""
    from harness.train.loop import Splits, resume_checkpoint

    splits = Splits.from_data(data, cfg)
    if saved is None:
        return
    resume_checkpoint(out / "checkpoint", cfg, splits.identity(data.source))
    if "data" not in saved:
        print(f"verify train: note: {_state_path(out)} records no data identity (written "
              f"before it was recorded), so it cannot be checked that {data.source} is the "
              f"data it was trained on", file=sys.stderr)


def _already_complete(saved: dict | None, out: Path, cfg) -> bool:
    """The checkpoint has all cfg.passes and the reports in `out` are of exactly that run."""
    if saved is None or saved["pass_index"] != cfg.passes:
        return False
    try:
        res = json.loads((out / "results.json").read_text())
        fresh = (res["records"] == saved["records"] and res["config"] == cfg.to_dict()
                 and (out / "report.md").stat().st_size > 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return fresh and (out / "params_final.npz").exists()


def _clear_run(out: Path) -> None:
    """--overwrite: remove the old run's checkpoint (its state first) and outputs."""
    ckpt = out / "checkpoint"
    _state_path(out).unlink(missing_ok=True)
    for old in ckpt.glob("params-*.npz"):
        old.unlink(missing_ok=True)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def _resume_command(args, out: Path) -> str:
    cmd = ["verify", "train", "--resume", "--out", str(out)]
    if args.data is not None:
        cmd += ["--data", str(args.data)]
    return shlex.join(cmd)


def _interrupted(args, out: Path) -> int:
    """Ctrl-C: say what the checkpoint holds and the command that continues it; 130."""
    if _state_path(out).exists():
        msg = (f"interrupted; files already written are complete; {out} holds "
               f"{_what_checkpoint(out)}. To continue: {_resume_command(args, out)}")
    else:
        msg = (f"interrupted before the first pass ended; {out} holds no checkpoint, so "
               "there is nothing to resume: run the same command again to start over")
    print(f"verify train: {msg}", file=sys.stderr)
    return 130


def _progress(disabled: bool, console=None):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("steps"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), disable=disabled, transient=False,
                    console=console)


def run(args, console=None) -> int:
    """Exit code: 0 done, 2 bad input (message on stderr), 130 interrupted (Ctrl-C).
    `console`: harness.cli's."""
    try:
        saved = _saved_state(args)
        cfg = _config(args, saved and saved["config"])
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
        if args.jobs == 0 or args.jobs < -1:
            raise ValueError(f"--jobs must be >= 1, or -1 for every core; got {args.jobs}")
        if args.seeds > 1 and args.resume:
            raise ValueError("--resume works on a single run, not with --seeds")
        out = Path(args.out or f"runs/train-{cfg.preset}-{cfg.optimizer}")
        if args.seeds == 1:
            _check_out(args, out, cfg, saved)
        from harness.data import load_usps

        data = load_usps(args.data)
        if cfg.train_limit is not None and not 1 <= cfg.train_limit <= len(data.train_y):
            raise ValueError(f"--train-limit must be between 1 and the {len(data.train_y)} "
                             f"training digits of {data.source}; got {cfg.train_limit}")
        _check_data(saved, out, cfg, data)
        if _already_complete(saved, out, cfg):
            print(f"train: {out} is already complete ({_what_checkpoint(out)}) and its "
                  f"report is up to date; nothing to do (a larger --passes extends it)")
            return 0
    except (ValueError, OSError) as e:
        print(f"verify train: {e}", file=sys.stderr)
        return 2
    if args.seeds > 1:
        return _run_seeds(cfg, data, args, out)
    if args.overwrite:
        _clear_run(out)
    try:
        return _run_one(cfg, data, args, out, console)
    except KeyboardInterrupt:
        return _interrupted(args, out)


def _run_one(cfg, data, args, out: Path, console) -> int:
    from harness.train.loop import format_record, passes_text, train
    from harness.train.report import write_run_report

    print(f"train: {cfg.preset} preset, {cfg.optimizer}, {passes_text(cfg.passes)}, seed "
          f"{cfg.seed}, {cfg.impl} ({cfg.dtype}); data {data.source}; output {out}")
    try:
        with _progress(args.no_progress or not sys.stdout.isatty(), console) as bar:
            task = bar.add_task("train", total=None)

            def on_progress(done, total):
                bar.update(task, completed=done, total=total)

            def on_pass(k, recs):
                for r in recs:
                    bar.console.print(format_record(r), highlight=False)

            result = train(cfg, data, out_dir=out, resume=args.resume,
                           on_progress=on_progress, on_pass=on_pass)
    except (CheckpointError, ValueError) as e:
        print(f"verify train: {e}", file=sys.stderr)
        return 2
    path = write_run_report(result, data, out)
    print(f"report: {path}")
    return 0


def _run_seeds(cfg, data, args, out: Path) -> int:
    from harness.train.report import run_seeds, seed_summary, write_json

    seeds = range(cfg.seed, cfg.seed + args.seeds)
    print(f"train: {args.seeds} seeds {list(seeds)} with joblib (n_jobs={args.jobs})")
    results = run_seeds(cfg, data, seeds, n_jobs=args.jobs)
    s = seed_summary(results)
    write_json(out / "seeds.json", {"config": cfg.to_dict(), "summary": s})
    for split in ("train", "test"):
        for q in ("mse", "error_pct", "misses"):
            v = s[f"{split}_{q}"]
            print(f"{split:5s} {q:9s} mean {v['mean']:.4g} ± {v['std']:.2g} "
                  f"(min {v['min']:.4g}, max {v['max']:.4g})")
    print(f"summary: {out / 'seeds.json'}")
    return 0


REPORTS = Path(__file__).resolve().parents[2] / "reports" / "train"
MAIN_RUNS = [("paper", "sdlm"), ("karpathy", "sgd"), ("paper", "sgd")]
HOLDOUT_RUNS = [("paper", "sdlm"), ("karpathy", "sgd")]
N_SEEDS = 5
HOLDOUT = 1000
LOCKSTEP_DIGITS = 7291  # the whole training set, every pass


def _job(kind, cfg, data, extra=None):
    from harness.train.loop import lockstep, train

    return train(cfg, data) if kind == "run" else lockstep(cfg, data, twin_dtype=extra)


def regenerate(out: Path = REPORTS, parts: str = "sweep,runs,lockstep,bench", data_dir=None,
               n_jobs: int = 2, smoke: dict | None = None) -> int:
    """Re-run everything behind reports/train/ (sweep, full runs with hold-out companions,
    seeds, lockstep, benchmark) and rewrite its Markdown, JSON and PNGs.

    smoke: TrainConfig overrides (e.g. {"passes": 1, "train_limit": 200}) for a quick
    check of the pipeline into another folder; never used for the committed reports."""
    import dataclasses
    import json

    import joblib

    from harness.data import load_usps
    from harness.train import figures
    from harness.train import report as rep
    from harness.train.loop import DEFAULT_RATES, TrainConfig, passes_text

    data = load_usps(data_dir)
    parts = set(parts.split(","))
    defaults = {f"{p}/{o}": v for (p, o), v in DEFAULT_RATES.items()}
    if "sweep" in parts:
        print("sweep: held-out training digits only ...", flush=True)
        kw = {"passes": 1, "train_limit": smoke["train_limit"]} if smoke else {}
        rep.write_json(out / "sweep.json", rep.sweep(data, n_jobs=n_jobs, **kw))
    sw = json.loads((out / "sweep.json").read_text())
    (out / "sweep.md").write_text(rep.sweep_markdown(sw, defaults))
    if "runs" in parts:
        jobs = []
        for pre, opt in MAIN_RUNS:
            cfg = TrainConfig(preset=pre, optimizer=opt, **sw["chosen"][f"{pre}/{opt}"],
                              **(smoke or {}))
            jobs.append(("run", cfg, None))
            if (pre, opt) in HOLDOUT_RUNS:
                jobs.append(("run", dataclasses.replace(cfg, holdout=HOLDOUT), None))
        main_cfg = jobs[0][1]
        jobs += [("run", dataclasses.replace(main_cfg, seed=s), None)
                 for s in range(1, N_SEEDS)]
        print(f"runs: {len(jobs)} jobs on {n_jobs} workers (tens of minutes) ...", flush=True)
        res = joblib.Parallel(n_jobs=n_jobs, verbose=5)(
            joblib.delayed(_job)(k, c, data, e) for k, c, e in jobs)
        by = {}
        for (kind, c, e), r in zip(jobs, res):
            by[(kind, c.preset, c.optimizer, c.holdout, c.seed, e)] = r
        runs = {}
        for pre, opt in MAIN_RUNS:
            main = by[("run", pre, opt, 0, 0, None)]
            held = by.get(("run", pre, opt, HOLDOUT, 0, None))
            a = rep.analyse(main, data, held)
            rep.write_run_report(main, data, out / f"{pre}-{opt}", a)
            runs[f"{pre}/{opt}"] = rep.run_summary(main, a)
            if held is not None:
                runs[f"{pre}/{opt}"]["holdout_run_final"] = {
                    k: held.final(k) for k in ("train", "test", "holdout")}
        seeds = [by[("run", main_cfg.preset, main_cfg.optimizer, 0, s, None)]
                 for s in range(N_SEEDS)]
        rep.write_json(out / "runs.json", runs)
        rep.write_json(out / "seeds.json", {"config": main_cfg.to_dict(),
                                            "summary": rep.seed_summary(seeds)})
    if "lockstep" in parts:
        pre, opt = MAIN_RUNS[0]
        main_cfg = TrainConfig(preset=pre, optimizer=opt, **sw["chosen"][f"{pre}/{opt}"],
                               **(smoke or {}))
        lcfg = dataclasses.replace(main_cfg, train_limit=min(
            LOCKSTEP_DIGITS, main_cfg.train_limit or LOCKSTEP_DIGITS))
        print(f"lockstep: NumPy and twin on {lcfg.train_limit} digits, "
              f"{passes_text(lcfg.passes)} ...", flush=True)
        res = joblib.Parallel(n_jobs=n_jobs, verbose=5)(
            joblib.delayed(_job)("lockstep", lcfg, data, dt) for dt in ("float64", "float32"))
        lock = dict(zip(("float64", "float32"), res))
        rep.write_json(out / "lockstep.json", lock)
        figures.lockstep_drift({f"twin {k} vs NumPy float64": v["rel_diff"]
                                for k, v in lock.items()}, out / "lockstep.png")
    if "bench" in parts:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
        from bench_train import bench

        print("bench: one pass, SGD vs SDLM ...", flush=True)
        rep.write_json(out / "bench.json", bench(data, repeats=1 if smoke else 3))
    rep.write_summary(out)
    print(f"wrote {out / 'README.md'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.train.cli")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    parser.add_argument("--regenerate-reports", action="store_true",
                        help="re-run every run behind reports/train/ (tens of minutes)")
    parser.add_argument("--parts", default="sweep,runs,lockstep,bench",
                        help="with --regenerate-reports: which of sweep,runs,lockstep,bench to "
                        "re-run "
                        "(the Markdown is always rewritten from the JSON)")
    parser.add_argument("--reports-data", default=None, help="USPS folder for the reports")
    args = parser.parse_args(argv)
    if args.regenerate_reports:
        return regenerate(parts=args.parts, data_dir=args.reports_data)
    if args.command != "train":
        parser.print_help()
        return 2
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
