"""`verify train` guards on --out: an existing run is never silently replaced or rewritten,
a resumed run is never shortened, a hand-edited checkpoint is named field by field, and
Ctrl-C says how to continue. Small runs: 20 real digits, SGD, one or two passes."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from harness.cli import main

pytestmark = pytest.mark.data


def _train(usps_dir, out, *extra):
    return main(["train", "--data", str(usps_dir), "--train-limit", "20", "--optimizer", "sgd",
                 "--out", str(out), "--no-progress", *extra])


def _snapshot(folder: Path) -> dict:
    """Every file under `folder`: its bytes and mtime."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _said(capsys) -> str:
    cap = capsys.readouterr()
    return " ".join((cap.out + cap.err).split())


def _state(out: Path) -> dict:
    return json.loads((out / "checkpoint" / "checkpoint.json").read_text())


@pytest.fixture(scope="module")
def finished(usps_dir, tmp_path_factory):
    """A finished 2-pass run; tests copy it before touching it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert _train(usps_dir, out, "--passes", "2") == 0
    return out


@pytest.fixture
def run2(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


# Bug 1: a new run into a folder holding a checkpoint replaced it silently.
def test_new_run_over_a_checkpoint_is_refused(usps_dir, run2, capsys):
    before = _snapshot(run2)
    capsys.readouterr()
    assert _train(usps_dir, run2, "--passes", "1") == 2
    msg = _said(capsys)
    assert str(run2) in msg and "a checkpoint after pass 2 of 2" in msg, msg
    assert "--resume" in msg and "--overwrite" in msg, msg
    assert _snapshot(run2) == before
    assert _train(usps_dir, run2, "--passes", "1", "--resume", "--overwrite") == 2
    assert _snapshot(run2) == before


def test_overwrite_replaces_the_old_run(usps_dir, run2):
    assert _train(usps_dir, run2, "--passes", "1", "--seed", "3", "--overwrite") == 0
    state = _state(run2)
    assert state["pass_index"] == 1 and state["config"]["seed"] == 3
    res = json.loads((run2 / "results.json").read_text())
    assert res["config"]["passes"] == 1 and res["records"][-1]["pass"] == 1
    assert [p.name for p in (run2 / "checkpoint").glob("params-*.npz")] == ["params-0001.npz"]


# Bug 2: --resume --passes 3 on a finished 10-pass run rewrote the reports as "3 passes".
def test_resume_with_fewer_passes_is_refused(usps_dir, run2, capsys):
    before = _snapshot(run2)
    capsys.readouterr()
    assert _train(usps_dir, run2, "--passes", "1", "--resume") == 2
    msg = _said(capsys)
    assert str(run2) in msg and "completed 2 passes" in msg and "--passes 1" in msg, msg
    assert _snapshot(run2) == before


@pytest.mark.parametrize("passes", [["--passes", "2"], []])
def test_resume_of_a_complete_run_changes_nothing(usps_dir, run2, capsys, passes):
    before = _snapshot(run2)
    capsys.readouterr()
    assert main(["train", "--data", str(usps_dir), "--resume", "--out", str(run2),
                 "--no-progress", *passes]) == 0
    assert "already complete" in _said(capsys)
    assert _snapshot(run2) == before


def test_resume_of_a_complete_run_rewrites_a_missing_report(usps_dir, run2):
    ckpt = _snapshot(run2 / "checkpoint")
    (run2 / "report.md").unlink()
    assert _train(usps_dir, run2, "--resume") == 0
    assert "2 passes" in (run2 / "report.md").read_text()
    assert _snapshot(run2 / "checkpoint") == ckpt


# Bug 3: config.seed = "zero" gave "internal error: TypeError: SeedSequence expects int".
@pytest.mark.parametrize("field, value, expected", [
    ("seed", "zero", "an int >= 0"),
    ("seed", -1, "an int >= 0"),
    ("passes", 2.5, "an int >= 1"),
    ("train_limit", 0, "an int >= 1, or null"),
    ("holdout", True, "an int >= 0"),
    ("preset", "lenet5", "'paper' or 'karpathy'"),
    ("lr", "fast", "a number > 0"),
    ("lr", None, "a number > 0"),
    ("dtype", "float16", "'float64' or 'float32'"),
    ("hessian_patterns", None, "an int >= 1"),
])
def test_bad_checkpoint_config_is_named(usps_dir, run2, capsys, field, value, expected):
    state_file = run2 / "checkpoint" / "checkpoint.json"
    doc = _state(run2)
    doc["config"][field] = value
    state_file.write_text(json.dumps(doc))
    before = _snapshot(run2)
    capsys.readouterr()
    assert _train(usps_dir, run2, "--resume", "--passes", "3") == 2
    msg = _said(capsys)
    assert "internal error" not in msg, msg
    assert str(state_file) in msg and f"config.{field}" in msg and expected in msg, msg
    assert f"found {value!r}" in msg, msg
    assert _snapshot(run2) == before


def test_bad_checkpoint_pass_index_is_named(usps_dir, run2, capsys):
    doc = _state(run2)
    doc["pass_index"] = 7  # more than config.passes
    (run2 / "checkpoint" / "checkpoint.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert _train(usps_dir, run2, "--resume", "--passes", "9") == 2
    msg = _said(capsys)
    assert "checkpoint.json" in msg and "pass_index" in msg and "found 7" in msg, msg


# Bug 4: Ctrl-C said "files already written are complete" but not how to continue.
def test_interrupt_names_the_resume_command(usps_dir, tmp_path, capsys, monkeypatch):
    import harness.train.loop as loop

    out = tmp_path / "int"

    def ctrl_c(record):  # the CLI prints pass 1's records after its checkpoint
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(loop, "format_record", ctrl_c)
        assert _train(usps_dir, out, "--passes", "2") == 130
    msg = _said(capsys)
    cmd = shlex.join(["verify", "train", "--resume", "--out", str(out), "--data",
                      str(usps_dir)])
    assert cmd in msg and "after pass 1 of 2" in msg, msg
    assert _state(out)["pass_index"] == 1
    assert main(shlex.split(cmd)[1:] + ["--no-progress"]) == 0
    assert _state(out)["pass_index"] == 2 and (out / "report.md").exists()


def test_interrupt_before_the_first_checkpoint_says_nothing_to_resume(
        usps_dir, tmp_path, capsys, monkeypatch):
    import harness.train.loop as loop

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.Runner, "step", ctrl_c)
    out = tmp_path / "early"
    assert _train(usps_dir, out, "--passes", "1") == 130
    msg = _said(capsys)
    assert "no checkpoint" in msg and "--resume" not in msg, msg
    assert not (out / "checkpoint" / "checkpoint.json").exists()


def test_train_limit_beyond_the_training_set_is_refused(usps_dir, tmp_path, capsys):
    from harness.cli import main

    rc = main(["train", "--data", str(usps_dir), "--train-limit", "100000", "--passes", "1",
               "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 2
    assert "--train-limit must be between 1 and the 7291 training digits" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- second user's findings


def _parquet_only(usps_dir, tmp_path) -> Path:
    """A folder holding only the parquet layout of the same digits (text would win)."""
    src = sorted((usps_dir / "data").glob("*.parquet"))
    if len(src) != 2:
        pytest.skip(f"no parquet copy of the digits under {usps_dir / 'data'}")
    folder = tmp_path / "parquet-only"
    folder.mkdir()
    for f in src:
        shutil.copy(f, folder / f.name)
    return folder


@pytest.fixture
def run1(usps_dir, tmp_path):
    """A 1-pass run on the text digits, as if interrupted after pass 1 of a longer one."""
    out = tmp_path / "run1"
    assert _train(usps_dir, out, "--passes", "1") == 0
    return out


# Finding 1: --resume on the parquet copy of the same digits (pixels within 1/127.5 of the
# text values) exited 0 with other results, and the report named only the parquet source.
def test_resume_on_other_data_is_refused(usps_dir, run1, tmp_path, capsys):
    pq = _parquet_only(usps_dir, tmp_path)
    state_file = run1 / "checkpoint" / "checkpoint.json"
    assert _state(run1)["data"]["source"] == f"text:{usps_dir}"
    before = _snapshot(run1)
    capsys.readouterr()
    rc = main(["train", "--data", str(pq), "--resume", "--passes", "2", "--out", str(run1),
               "--no-progress"])
    cap = capsys.readouterr()
    msg = " ".join(cap.err.split())
    assert rc == 2, msg
    assert str(state_file) in msg and f"text:{usps_dir}" in msg and f"parquet:{pq}" in msg
    assert "nothing was changed" in msg, msg
    assert cap.out == ""
    assert _snapshot(run1) == before
    assert main(["train", "--data", str(usps_dir), "--resume", "--passes", "2", "--out",
                 str(run1), "--no-progress"]) == 0


def test_data_identity_covers_the_digits_used_only(tmp_path):
    """The identity is of the arrays trained and evaluated on: a change past --train-limit
    resumes, a change of 1e-12 in a trained digit, or in a test digit, is refused."""
    from types import SimpleNamespace

    from harness.data import synthetic_batch
    from harness.train.loop import TrainConfig, train

    tx, ty = synthetic_batch(30, seed=1)
    ex, ey = synthetic_batch(10, seed=2)
    cfg = TrainConfig(optimizer="sgd", passes=1, train_limit=20)

    def data(**change):
        d = SimpleNamespace(train_x=tx.copy(), train_y=ty, test_x=ex.copy(), test_y=ey,
                            source="synthetic")
        for name, i in change.items():
            getattr(d, name)[i].flat[0] += 1e-12
        return d

    train(cfg, data(), out_dir=tmp_path)
    more = TrainConfig(optimizer="sgd", passes=2, train_limit=20)
    for change in ({"train_x": 5}, {"test_x": 9}):
        with pytest.raises(ValueError, match="trained on synthetic.*nothing was changed"):
            train(more, data(**change), out_dir=tmp_path, resume=True)
    assert train(more, data(train_x=25), out_dir=tmp_path, resume=True).records[-1]["pass"] == 2


def test_checkpoint_without_data_identity_still_resumes(usps_dir, run1, capsys):
    """Checkpoints written before the identity was recorded: a one-line note, then the run
    continues and its next checkpoint records the identity."""
    doc = _state(run1)
    del doc["data"]
    (run1 / "checkpoint" / "checkpoint.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert _train(usps_dir, run1, "--resume", "--passes", "2") == 0
    err = capsys.readouterr().err
    assert "records no data identity" in err and len(err.strip().splitlines()) == 1, err
    assert _state(run1)["data"]["source"] == f"text:{usps_dir}"


def test_bad_checkpoint_data_identity_is_named(usps_dir, run1, capsys):
    doc = _state(run1)
    doc["data"]["sha256"] = "abc"
    state_file = run1 / "checkpoint" / "checkpoint.json"
    state_file.write_text(json.dumps(doc))
    capsys.readouterr()
    assert _train(usps_dir, run1, "--resume", "--passes", "2") == 2
    msg = _said(capsys)
    assert str(state_file) in msg and "data.sha256" in msg and "found 'abc'" in msg, msg


# Finding 2: a resume with a setting that disagrees with the checkpoint printed the banner
# with the new settings, and only then refused.
@pytest.mark.parametrize("extra", [["--seed", "3"], ["--lr", "0.5"], ["--passes", "3",
                                                                       "--dtype", "float32"]])
def test_resume_mismatch_is_refused_before_the_banner(usps_dir, run2, capsys, extra):
    before = _snapshot(run2)
    capsys.readouterr()
    assert main(["train", "--data", str(usps_dir), "--resume", "--out", str(run2),
                 "--no-progress", *extra]) == 2
    cap = capsys.readouterr()
    assert cap.out == "", cap.out
    assert "another run" in cap.err and extra[-2][2:] in cap.err, cap.err
    assert _snapshot(run2) == before


def test_corrupt_params_on_resume_refused_before_the_banner(usps_dir, run1, capsys):
    pfile = run1 / "checkpoint" / "params-0001.npz"
    pfile.write_bytes(pfile.read_bytes()[:-10])
    capsys.readouterr()
    assert _train(usps_dir, run1, "--resume", "--passes", "2") == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "params-0001.npz" in cap.err, (cap.out, cap.err)


# Finding 3: a one-pass run's report said "1 passes".
def test_one_pass_is_singular(usps_dir, run1, capsys):
    report = (run1 / "report.md").read_text()
    assert "1 pass," in report and "1 passes" not in report
    _train(usps_dir, run1.parent / "again", "--passes", "1")
    out = capsys.readouterr().out
    assert ", 1 pass, seed 0" in out and "1 passes" not in out, out


def test_passes_text():
    from harness.train.loop import passes_text

    assert [passes_text(n) for n in (1, 2, 23)] == ["1 pass", "2 passes", "23 passes"]


# Finding 4: an --out holding report.md / results.json but no checkpoint (checkpoint/
# deleted, or another tool's output) was overwritten silently by a new run.
@pytest.mark.parametrize("case", ["checkpoint deleted", "foreign files"])
def test_outputs_without_a_checkpoint_are_not_overwritten(usps_dir, run2, tmp_path, capsys,
                                                          case):
    if case == "checkpoint deleted":
        out = run2
        shutil.rmtree(out / "checkpoint")
        names = ["report.md", "results.json"]
    else:
        out = tmp_path / "other"
        out.mkdir()
        (out / "results.json").write_text('{"tool": "someone else"}\n')
        names = ["results.json"]
    before = _snapshot(out)
    capsys.readouterr()
    assert _train(usps_dir, out, "--passes", "1") == 2
    cap = capsys.readouterr()
    msg = " ".join(cap.err.split())
    assert str(out) in msg and all(n in msg for n in names), msg
    assert "no checkpoint" in msg and "--overwrite" in msg and "nothing was changed" in msg
    assert cap.out == "" and _snapshot(out) == before
    assert _train(usps_dir, out, "--passes", "1", "--overwrite") == 0
    assert _state(out)["pass_index"] == 1
    assert json.loads((out / "results.json").read_text())["config"]["passes"] == 1
