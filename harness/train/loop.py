"""Full training on the USPS digits: per-sample SGD or SDLM, evaluation, checkpoints, lockstep.

One pass visits the training digits once, one pattern per step, in their file order
(ASSUMPTION: the paper gives no order; a fixed order makes every run repeatable bit for bit).
After every pass the net is evaluated on each split:
    mse        mean over patterns and output units of (out - target)^2   (the paper's MSE)
    error_pct  100 * misses / n, a miss being argmax(out) != label
Library code returns records; the CLI prints them with `format_record`, one fixed-format line
per split per pass, e.g.
    pass 23  train  mse 2.500e-03  error   0.14%  misses   10 / 7291

Optimizers (per pattern p, loss E_p = mean over the 10 outputs of (y - t)^2):
    sgd    w_k -= lr * dE_p/dw_k
    sdlm   w_k -= eta / (mu + h_kk) * dE_p/dw_k, h from reference/sdlm.py, re-estimated before
           each pass on `hessian_patterns` training digits drawn without replacement by a
           seeded generator whose state is checkpointed (ASSUMPTION: LeCun 1998 says "a few
           hundred patterns"; 500 here; eta and mu stay constant over the passes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.train.checkpoint import (
    STATE_FILE,
    CheckpointError,
    check_saved_state,
    load_checkpoint,
    save_checkpoint,
)
from reference.numpy_net import NumpyNet
from reference.params import Params, init_params, save_params
from reference.sdlm import GaussNewtonDiagonal, sdlm_steps
from reference.spec import NetSpec, preset

# Rates chosen by the sweep on held-out training digits (reports/train/sweep.md); the
# sweep never reads the test set. Keys: (preset, optimizer).
DEFAULT_RATES: dict[tuple[str, str], dict[str, float]] = {
    ("paper", "sgd"): {"lr": 0.03},
    ("paper", "sdlm"): {"eta": 0.001, "mu": 0.02},
    ("karpathy", "sgd"): {"lr": 0.03},
    ("karpathy", "sdlm"): {"eta": 0.003, "mu": 0.1},
}
PROGRESS_EVERY = 256  # steps between progress callbacks


def passes_text(n: int) -> str:
    """'1 pass', '2 passes': the count of passes in user-facing text."""
    return f"{n} pass" if n == 1 else f"{n} passes"


@dataclass
class TrainConfig:
    preset: str = "paper"
    optimizer: str = "sdlm"
    lr: float | None = None  # sgd; None: DEFAULT_RATES
    eta: float | None = None  # sdlm
    mu: float | None = None  # sdlm
    passes: int = 23
    seed: int = 0
    train_limit: int | None = None  # train on the first n digits (after the hold-out)
    holdout: int = 0  # the last `holdout` training digits are held out, never trained on
    impl: str = "numpy"  # "numpy" (reference) or "twin" (reference/torch_twin.py)
    dtype: str = "float64"
    hessian_patterns: int = 500

    def resolved(self) -> "TrainConfig":
        """A copy with rates filled from DEFAULT_RATES and every field checked."""
        if self.optimizer not in ("sgd", "sdlm"):
            raise ValueError(f"optimizer must be 'sgd' or 'sdlm', got {self.optimizer!r}")
        if self.impl not in ("numpy", "twin"):
            raise ValueError(f"impl must be 'numpy' or 'twin', got {self.impl!r}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        preset(self.preset)  # raises on an unknown preset
        d = DEFAULT_RATES[(self.preset, self.optimizer)]
        c = dataclasses.replace(self, **{k: v for k, v in d.items()
                                         if getattr(self, k) is None})
        for k in ("lr",) if c.optimizer == "sgd" else ("eta", "mu"):
            if not getattr(c, k) > 0:
                raise ValueError(f"{k} must be > 0, got {getattr(c, k)}")
        if c.passes < 1 or c.hessian_patterns < 1 or c.holdout < 0:
            raise ValueError(f"passes and hessian_patterns must be >= 1 and holdout >= 0, "
                             f"got {c.passes}, {c.hessian_patterns}, {c.holdout}")
        if c.train_limit is not None and c.train_limit < 1:
            raise ValueError(f"train_limit must be >= 1, got {c.train_limit}")
        return c

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Splits:
    """The arrays a run sees: train (what it steps on), test, and the optional hold-out."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    holdout_x: np.ndarray | None = None
    holdout_y: np.ndarray | None = None

    @classmethod
    def from_data(cls, data, cfg: TrainConfig) -> "Splits":
        x, y = np.asarray(data.train_x, np.float64), np.asarray(data.train_y, np.int64)
        if cfg.holdout >= len(x):
            raise ValueError(f"holdout {cfg.holdout} leaves no training digits of {len(x)}")
        hx = hy = None
        if cfg.holdout:
            x, y, hx, hy = x[:-cfg.holdout], y[:-cfg.holdout], x[-cfg.holdout:], y[-cfg.holdout:]
        if cfg.train_limit is not None:
            x, y = x[:cfg.train_limit], y[:cfg.train_limit]
        return cls(x, y, np.asarray(data.test_x, np.float64), np.asarray(data.test_y),
                   hx, hy)

    def identity(self, source: str) -> dict:
        """{"sha256", "source"}: sha256 over every array here (names, dtypes, shapes and
        bytes; labels as int64, pixels as float64), so a resumed run can tell whether it
        sees the digits it was trained on; `source` only names them in messages."""
        h = hashlib.sha256()
        for f in dataclasses.fields(self):
            a = getattr(self, f.name)
            if a is None:
                continue
            a = np.ascontiguousarray(a, np.int64 if f.name.endswith("_y") else np.float64)
            h.update(f"{f.name} {a.dtype.str} {a.shape}\n".encode())
            h.update(a.tobytes())
        return {"sha256": h.hexdigest(), "source": str(source)}

    def eval_sets(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        sets = {"train": (self.train_x, self.train_y)}
        if len(self.test_x):  # the rate sweep runs with no test digits at all
            sets["test"] = (self.test_x, self.test_y)
        if self.holdout_x is not None:
            sets["holdout"] = (self.holdout_x, self.holdout_y)
        return sets


# ---------------------------------------------------------------- one implementation


class Runner:
    """A net of either implementation, with one optimizer step and the diagonal estimate."""

    def __init__(self, spec: NetSpec, params: Params, impl: str, dtype: str):
        self.impl, self.spec = impl, spec
        if impl == "numpy":
            self.net = NumpyNet(spec, params, np.dtype(dtype))
            self._gn = GaussNewtonDiagonal(spec)
        else:
            import torch

            from reference.torch_twin import TorchNet

            self._torch = torch
            # One pattern per step: torch's intra-op threads only add synchronisation (on
            # this 2-core machine a step took 45x longer with 2 threads under load).
            torch.set_num_threads(1)
            self.net = TorchNet(spec, params, getattr(torch, dtype))
        self.np_dtype = np.dtype(dtype)

    def step(self, x, y, rate) -> None:
        """One update on pattern(s) x: w -= rate * dE/dw (rate a float or {name: array})."""
        if self.impl == "numpy":
            if not isinstance(rate, dict):  # a float, or one rate per parameter, flat
                self.net.sgd_step(x, y, rate)  # bitwise p[k] -= rate[k] * g: see tests
                return
            _, grads, _ = self.net.loss_and_grads(x, y)
            p = self.net.p
            for k, g in grads.items():
                p[k] -= rate[k] * g
            return
        _, grads, _ = self.net.loss_and_grads(x, y, need_input_grad=False)
        with self._torch.no_grad():
            for k, g in grads.items():
                r = rate if isinstance(rate, float) else rate[k]
                d = np.asarray(r * g, dtype=self.np_dtype)
                self.net.tensor(k).sub_(self._torch.from_numpy(d))

    def pack(self, rates: dict[str, np.ndarray]):
        """Per-parameter rates in the form `step` takes fastest: for NumPy one flat vector
        in parameter order, which NumpyNet.sgd_step's `g *= lr` applies elementwise."""
        if self.impl != "numpy":
            return rates
        return np.concatenate([rates[k].ravel() for k in self.net.p]).astype(self.np_dtype)

    def gn_diagonal(self, x) -> dict[str, np.ndarray]:
        if self.impl == "numpy":
            return self._gn(self.net, x)
        from reference.sdlm_torch import twin_gn_diagonal

        return {k: v.numpy().astype(np.float64) for k, v in
                twin_gn_diagonal(self.net, x).items()}

    def predict(self, x, batch=512) -> np.ndarray:
        return np.asarray(self.net.predict(x, batch=batch), dtype=np.float64)

    def params(self) -> Params:
        return self.net.get_params()


def evaluate_outputs(spec: NetSpec, out: np.ndarray, y: np.ndarray) -> dict:
    t = np.full(out.shape, spec.target_off)
    t[np.arange(len(y)), y] = spec.target_on
    misses = int(np.sum(out.argmax(axis=1) != y))
    return {"mse": float(np.mean((out - t) ** 2)), "misses": misses, "n": int(len(y)),
            "error_pct": 100.0 * misses / len(y)}


def format_record(r: dict) -> str:
    return (f"pass {r['pass']:2d}  {r['split']:<7s} mse {r['mse']:.3e}  error "
            f"{r['error_pct']:6.2f}%  misses {r['misses']:4d} / {r['n']}")


# ---------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    config: TrainConfig
    records: list[dict]  # one per split per pass
    params: Params
    pass_seconds: list[float]  # training time of every pass (earlier ones from a checkpoint)
    eval_seconds: list[float]  # evaluation time after each of those passes
    hessian: list[dict]  # per pass: {name: mean h_kk} (sdlm only)

    def final(self, split: str) -> dict:
        return [r for r in self.records if r["split"] == split][-1]


def _rates(cfg: TrainConfig, runner: Runner, x, rng) -> tuple[object, dict]:
    if cfg.optimizer == "sgd":
        return float(cfg.lr), {}
    n = min(cfg.hessian_patterns, len(x))
    idx = np.sort(rng.choice(len(x), size=n, replace=False))
    h = runner.gn_diagonal(x[idx])
    steps = {k: v.astype(runner.np_dtype) for k, v in sdlm_steps(h, cfg.eta, cfg.mu).items()}
    return runner.pack(steps), {k: float(v.mean()) for k, v in h.items()}


def train(cfg: TrainConfig, data, out_dir: str | Path | None = None, resume: bool = False,
          on_progress: Callable[[int, int], None] | None = None,
          on_pass: Callable[[int, list[dict]], None] | None = None) -> TrainResult:
    """Train as `cfg` says on `data` (train_x, train_y, test_x, test_y; see harness.data).

    out_dir    checkpoint after every pass into out_dir/checkpoint (atomic); None: no files
    resume     continue from out_dir/checkpoint if it exists (configs must agree)
    on_progress(steps_done, steps_total), every PROGRESS_EVERY steps and at a pass's end
    on_pass(pass_index, records_of_that_pass), after the pass's checkpoint is written
    """
    cfg = cfg.resolved()
    spec = preset(cfg.preset)
    splits = Splits.from_data(data, cfg)
    params = init_params(spec, cfg.seed)
    rng = np.random.default_rng([cfg.seed, 1989])
    records, hessian, start = [], [], 0
    ckpt = Path(out_dir) / "checkpoint" if out_dir is not None else None
    identity = splits.identity(getattr(data, "source", "unnamed data"))
    if resume:
        if ckpt is None:
            raise ValueError("resume needs an output folder holding a checkpoint")
        found = resume_checkpoint(ckpt, cfg, identity)
        if found is not None:
            params, state = found
            _restore_rng(rng, state["rng"], ckpt / STATE_FILE)
            records, hessian, start = state["records"], state["hessian"], state["pass_index"]
    runner = Runner(spec, params, cfg.impl, cfg.dtype)
    x, y = splits.train_x, splits.train_y
    total, done = cfg.passes * len(x), start * len(x)
    # timings of passes run before an interruption come back with the checkpoint
    pass_seconds = list(state.get("pass_seconds", [])) if start else []
    eval_seconds = list(state.get("eval_seconds", [])) if start else []
    for k in range(start + 1, cfg.passes + 1):
        t0 = time.perf_counter()
        rate, hmean = _rates(cfg, runner, x, rng)
        for i in range(len(x)):
            runner.step(x[i:i + 1], y[i:i + 1], rate)
            if on_progress is not None and (i + 1) % PROGRESS_EVERY == 0:
                on_progress(done + i + 1, total)
        done += len(x)
        pass_seconds.append(time.perf_counter() - t0)
        if on_progress is not None:
            on_progress(done, total)
        t1 = time.perf_counter()
        new = [dict(evaluate_outputs(spec, runner.predict(sx), sy), split=name, **{"pass": k})
               for name, (sx, sy) in splits.eval_sets().items()]
        records += new
        eval_seconds.append(time.perf_counter() - t1)
        hessian.append(hmean)
        if ckpt is not None:
            save_checkpoint(ckpt, runner.params(), k, {
                "config": cfg.to_dict(), "data": identity, "rng": rng.bit_generator.state,
                "records": records, "hessian": hessian, "pass_seconds": pass_seconds,
                "eval_seconds": eval_seconds})
        if on_pass is not None:
            on_pass(k, new)
    result = TrainResult(cfg, records, runner.params(), pass_seconds, eval_seconds,
                         hessian)
    if out_dir is not None:
        save_params(result.params, Path(out_dir) / "params_final.npz")
    return result


def resume_checkpoint(ckpt: Path, cfg: TrainConfig, identity: dict) -> tuple | None:
    """(params, state) of the checkpoint in folder `ckpt`, or None if there is none, checked
    to continue the run `cfg` (resolved) on the data `identity` (Splits.identity): raises
    CheckpointError or ValueError naming the file otherwise. A checkpoint that records no
    data identity (written before it was recorded) is not checked against the data."""
    found = load_checkpoint(ckpt, preset(cfg.preset))
    if found is None:
        return None
    state = found[1]
    check_saved_state(state, ckpt / STATE_FILE)
    _check_same_run(state["config"], cfg, ckpt)
    if state["pass_index"] > cfg.passes:
        raise ValueError(f"{ckpt}: the checkpoint has completed "
                         f"{passes_text(state['pass_index'])}, more than the {cfg.passes} "
                         f"asked for")
    _check_same_data(state.get("data"), identity, ckpt / STATE_FILE)
    return found


def _check_same_data(saved: dict | None, now: dict, where: Path) -> None:
    if saved is None or saved["sha256"] == now["sha256"]:
        return
    raise ValueError(f"{where}: the checkpoint was trained on {saved['source']} (digits "
                     f"sha256 {saved['sha256'][:16]}...), but the data given now is "
                     f"{now['source']} (sha256 {now['sha256'][:16]}...); a resumed run must "
                     f"see the same digits, value for value, to continue bit for bit. Resume "
                     f"with the data it was trained on (--data), or start a new run in "
                     f"another --out; nothing was changed")


def _check_same_run(saved: dict, cfg: TrainConfig, where: Path) -> None:
    now = cfg.to_dict()
    diff = {k: (saved.get(k), now[k]) for k in now if k != "passes" and saved.get(k) != now[k]}
    if diff:
        raise ValueError(f"{where}: the checkpoint is of another run; differing settings "
                         f"(checkpoint, now): {diff}")


def _restore_rng(rng, saved, where: Path) -> None:
    try:
        rng.bit_generator.state = saved
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{where}: rng is not a {type(rng.bit_generator).__name__} "
                              f"state ({e!r})") from None


# ---------------------------------------------------------------- lockstep


def layer_rel_diff(pa: Params, pb: Params) -> dict[str, float]:
    """Per layer: max |a - b| over its w and b, divided by max |a| over the same entries."""
    out = {}
    for L in ("H1", "H2", "H3", "out"):
        a = np.concatenate([pa[f"{L}.w"].ravel(), pa[f"{L}.b"].ravel()])
        b = np.concatenate([pb[f"{L}.w"].ravel(), pb[f"{L}.b"].ravel()])
        out[L] = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
    return out


def lockstep(cfg: TrainConfig, data, twin_dtype: str = "float64",
             on_pass: Callable[[int, dict], None] | None = None) -> dict:
    """Train the NumPy reference (float64) and the twin (`twin_dtype`) from the same weights,
    on the same patterns in the same order (SDLM: the same Hessian patterns, each side
    estimating its own diagonal); after every pass, `layer_rel_diff` of their parameters."""
    cfg = dataclasses.replace(cfg, impl="numpy", dtype="float64").resolved()
    spec = preset(cfg.preset)
    splits = Splits.from_data(data, cfg)
    params = init_params(spec, cfg.seed)
    ref = Runner(spec, params, "numpy", "float64")
    twin = Runner(spec, params, "twin", twin_dtype)
    rng = np.random.default_rng([cfg.seed, 1989])
    x, y = splits.train_x, splits.train_y
    per_pass = []
    for k in range(1, cfg.passes + 1):
        state = rng.bit_generator.state
        rate_ref, _ = _rates(cfg, ref, x, rng)
        rng.bit_generator.state = state  # the twin draws the same Hessian patterns
        rate_twin, _ = _rates(cfg, twin, x, rng)
        for i in range(len(x)):
            ref.step(x[i:i + 1], y[i:i + 1], rate_ref)
            twin.step(x[i:i + 1], y[i:i + 1], rate_twin)
        d = layer_rel_diff(ref.params(), twin.params())
        per_pass.append(d)
        if on_pass is not None:
            on_pass(k, d)
    return {"config": cfg.to_dict(), "twin_dtype": twin_dtype, "train_digits": len(x),
            "rel_diff": per_pass,
            "max_rel_diff": max(max(d.values()) for d in per_pass)}
