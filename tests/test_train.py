"""Training loop: records, checkpoints, bitwise resume, lockstep, rejection, sweep, CLI."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.data import synthetic_batch
from harness.train.checkpoint import CheckpointError, load_checkpoint
from harness.train.cli import add_parser, run
from harness.train.loop import TrainConfig, format_record, lockstep, train
from harness.train.report import (
    apply_threshold,
    margin_threshold,
    rejection_table,
    run_seeds,
    seed_summary,
    sweep,
)
from reference.numpy_net import NumpyNet
from reference.params import load_params
from reference.spec import paper

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    tx, ty = synthetic_batch(260, seed=11)
    ex, ey = synthetic_batch(80, seed=12)
    return SimpleNamespace(train_x=tx, train_y=ty, test_x=ex, test_y=ey, source="synthetic")


def small(**kw):
    base = dict(passes=3, train_limit=120, hessian_patterns=50)
    base.update(kw)
    return TrainConfig(**base)


def test_records_match_an_independent_evaluation(data):
    r = train(small(optimizer="sgd", lr=0.02), data)
    assert [(x["pass"], x["split"]) for x in r.records] == [
        (k, s) for k in (1, 2, 3) for s in ("train", "test")]
    net = NumpyNet(paper(), r.params)
    y = net.forward(data.test_x)
    assert r.final("test")["mse"] == pytest.approx(net.loss.value(y, data.test_y), rel=1e-12)
    misses = int(np.sum(y.argmax(1) != data.test_y))
    assert r.final("test")["misses"] == misses
    assert r.final("train")["n"] == 120
    line = format_record(r.final("train"))
    assert line.startswith("pass  3  train   mse ") and line.endswith(" / 120")


def test_flat_rates_through_sgd_step_equal_the_per_parameter_update(data):
    """SDLM's fast path (one flat rate vector through NumpyNet.sgd_step) is bit for bit the
    plain per-parameter update p[k] -= rate[k] * g with loss_and_grads' gradients."""
    from harness.train.loop import Runner
    from reference.params import init_params

    spec = paper()
    init = init_params(spec, 0)
    fast = Runner(spec, init, "numpy", "float64")
    net = NumpyNet(spec, init)
    rng = np.random.default_rng(0)
    rates = {k: rng.uniform(0.01, 0.1, v.shape) for k, v in init.items()}
    flat = fast.pack(rates)
    for i in range(30):
        x, y = data.train_x[i:i + 1], data.train_y[i:i + 1]
        fast.step(x, y, flat)
        _, g, _ = net.loss_and_grads(x, y)
        for k in g:
            net.p[k] -= rates[k] * g[k]
    assert fast.params().checksum() == net.get_params().checksum()


@pytest.mark.parametrize("opt", ["sgd", "sdlm"])
def test_resume_after_interruption_is_bitwise(data, tmp_path, opt):
    cfg = small(optimizer=opt)
    whole = train(cfg, data)

    def boom(k, recs):
        if k == 1:
            raise KeyboardInterrupt("injected after pass 1")

    with pytest.raises(KeyboardInterrupt):
        train(cfg, data, out_dir=tmp_path, on_pass=boom)
    state = json.loads((tmp_path / "checkpoint" / "checkpoint.json").read_text())
    assert state["pass_index"] == 1
    resumed = train(cfg, data, out_dir=tmp_path, resume=True)
    assert resumed.params.checksum() == whole.params.checksum()
    assert resumed.records == whole.records
    assert len(resumed.pass_seconds) == 3  # pass 1's time comes back with the checkpoint


def test_corrupt_checkpoint_is_named(data, tmp_path):
    cfg = small(optimizer="sgd", passes=1)
    train(cfg, data, out_dir=tmp_path)
    pfile = tmp_path / "checkpoint" / "params-0001.npz"
    raw = bytearray(pfile.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pfile.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="params-0001.npz.*corrupt"):
        load_checkpoint(tmp_path / "checkpoint", paper())
    with pytest.raises(CheckpointError, match="params-0001.npz"):
        train(cfg, data, out_dir=tmp_path, resume=True)


def test_resume_refuses_another_runs_checkpoint(data, tmp_path):
    train(small(optimizer="sgd", lr=0.02, passes=1), data, out_dir=tmp_path)
    with pytest.raises(ValueError, match="another run.*lr"):
        train(small(optimizer="sgd", lr=0.03, passes=2), data, out_dir=tmp_path, resume=True)


@pytest.mark.parametrize("opt", ["sgd", "sdlm"])
def test_lockstep_float64_stays_within_bound(data, opt):
    res = lockstep(small(optimizer=opt, passes=2, train_limit=60), data)
    assert len(res["rel_diff"]) == 2 and set(res["rel_diff"][0]) == {"H1", "H2", "H3", "out"}
    # float64 autograd vs hand-written backward: rounding only, ~1e-15 per step.
    assert res["max_rel_diff"] < 1e-12


def test_lockstep_float32_drifts_measurably(data):
    res = lockstep(small(optimizer="sgd", lr=0.05, passes=1, train_limit=60), data,
                   twin_dtype="float32")
    assert 1e-9 < res["max_rel_diff"] < 1e-3


def test_rejection_helpers():
    out = np.array([[0.9, 0.1, 0], [0.2, 0.8, 0], [0.5, 0.45, 0], [0.3, 0.35, 0]])
    y = np.array([0, 1, 1, 0])  # the two low-margin patterns are the misses
    rej, err = rejection_table(out, y)
    np.testing.assert_allclose(rej, [0, 25, 50, 75])
    np.testing.assert_allclose(err, [50, 100 / 3, 0, 0])
    t = margin_threshold(out, y, 1.0)
    assert t == pytest.approx(0.6)
    a = apply_threshold(out, y, t)
    assert a["rejected_pct"] == 50 and a["misses"] == 0


def test_sweep_never_reads_the_test_set(data):
    class Guarded(SimpleNamespace):
        def __getattribute__(self, name):
            if name.startswith("test"):
                raise AssertionError(f"the sweep read {name}")
            return super().__getattribute__(name)

    g = Guarded(train_x=data.train_x, train_y=data.train_y, test_x=None, test_y=None)
    s = sweep(g, passes=1, holdout=60, train_limit=40, n_jobs=1,
              grid={("paper", "sgd"): {"lr": [0.01, 0.05]}})
    assert len(s["runs"]) == 2 and s["chosen"]["paper/sgd"]["lr"] in (0.01, 0.05)
    assert all(np.isfinite(r["holdout_mse"]) for r in s["runs"])


def test_seeds_differ_and_summarise(data):
    rs = run_seeds(small(optimizer="sgd", passes=1, train_limit=40), data, [0, 1], n_jobs=1)
    assert rs[0].params.checksum() != rs[1].params.checksum()
    s = seed_summary(rs)
    v = s["test_error_pct"]
    assert v["min"] <= v["mean"] <= v["max"] and len(v["values"]) == 2


def _args(*argv):
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(["train", *argv])


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert run(_args("--passes", "0", "--data", str(tmp_path))) == 2
    assert "passes" in capsys.readouterr().err
    assert run(_args("--data", str(tmp_path / "nowhere"))) == 2
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.data
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    usps = Path(os.environ.get("USPS_DATA", ROOT.parent / "shared" / "data" / "usps"))
    if not (usps / "zip.train.gz").exists():
        pytest.skip(f"NOT RUN: no USPS digits at {usps}")
    common = ["--data", str(usps), "--train-limit", "200", "--passes", "12", "--no-progress"]
    cmd = [sys.executable, "-m", "harness.train.cli", "train", *common]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(killed)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = killed / "checkpoint" / "checkpoint.json"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = json.loads(state.read_text())["pass_index"]
    assert 1 <= done < 12
    assert run(_args(*common, "--out", str(killed), "--resume")) == 0
    whole = tmp_path / "whole"
    assert run(_args(*common, "--out", str(whole))) == 0
    a = load_params(killed / "params_final.npz", paper())
    b = load_params(whole / "params_final.npz", paper())
    assert a.checksum() == b.checksum()
