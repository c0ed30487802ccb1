"""The bad-input catalog: what a user can get wrong, and what `verify` must say.

Each case runs the CLI as a user would and checks three things: the exit code (2 bad input,
1 a finding about the candidate), that the message names the file, layer or option at
fault, and that nothing was lost: a result file written before survives untouched and no
temporary file is left behind. Unit-level variants of many cases live next to the code they
test (test_data.py, test_verify_candidate.py, test_reference.py); this table is the
user-level view, one row per mistake.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main

FIX = Path(__file__).parent / "fixtures" / "candidates"
SENTINEL = "a finished result from an earlier run\n"


def _text_line(label, values):
    return f"{label:.4f} " + " ".join(f"{v:.4f}" for v in values) + "\n"


def _folder_with(tmp, train_lines=None, raw=None):
    d = tmp / "usps"
    d.mkdir()
    if raw is not None:
        (d / "zip.train.gz").write_bytes(raw)
        (d / "zip.test.gz").write_bytes(raw)
        return d
    for name in ("zip.train.gz", "zip.test.gz"):
        with gzip.open(d / name, "wt") as fh:
            fh.writelines(train_lines)
    return d


def _png_parquet(tmp):
    import pandas as pd

    d = tmp / "usps"
    (d / "data").mkdir(parents=True)
    rows = [{"image": {"bytes": b"\x89PNG not really", "path": None}, "label": 3}]
    for split in ("train", "test"):
        pd.DataFrame(rows).to_parquet(d / "data" / f"{split}-00000-of-00001.parquet")
    return d


def _npz_wrong_shape(tmp):
    from reference.params import init_params
    from reference.spec import paper

    a = init_params(paper(), 0).arrays()
    a["H2.w"] = np.zeros((12, 12, 5, 5))
    np.savez(tmp / "w.npz", **a)
    return tmp / "w.npz"


GOOD = _text_line(3, np.zeros(256))
CASES = [
    # (id, argv builder(tmp) -> list, exit code, words in the output)
    ("data: empty folder", lambda t: ["--data", str(_mk(t / "empty"))], 2, ["empty"]),
    ("data: not gzip", lambda t: ["--data", str(_folder_with(t, raw=b"plain text"))], 2,
     ["zip.train.gz"]),
    ("data: 255 values on a line",
     lambda t: ["--data", str(_folder_with(t, [GOOD, _text_line(1, np.zeros(255))]))], 2,
     ["zip.train.gz"]),
    ("data: label 11", lambda t: ["--data", str(_folder_with(t, [_text_line(11, np.zeros(256))]))],
     2, ["zip.train.gz", "label"]),
    ("data: value 3.0 outside [-1, 1]",
     lambda t: ["--data", str(_folder_with(t, [_text_line(2, np.full(256, 3.0))]))], 2,
     ["zip.train.gz"]),
    ("data: bad PNG bytes in parquet", lambda t: ["--data", str(_png_parquet(t))], 2,
     ["parquet"]),
    ("data: a file, not a folder", lambda t: ["--data", str(_file(t / "f.txt"))], 2,
     ["f.txt"]),
    ("data: missing folder", lambda t: ["--data", str(t / "nowhere")], 2, ["nowhere"]),
    ("params: not an npz", lambda t: ["--params", str(_file(t / "p.npz"))], 2, ["p.npz"]),
    ("params: wrong shape", lambda t: ["--params", str(_npz_wrong_shape(t))], 2,
     ["w.npz", "H2.w"]),
    ("args: --samples 0", lambda t: ["--samples", "0"], 2, ["--samples"]),
    ("args: float32 with a candidate that has no float32 build",
     lambda t: ["--candidate", f"{FIX}/good_reference.py:candidate", "--dtype", "float32"],
     1, ["with_dtype", "NOT RUN"]),
    ("report: --json under a file",
     lambda t: ["--json", str(_file(t / "f") / "o.json"), "--markdown", str(t / "ok.md")],
     2, ["not a folder"]),
    ("candidate: file missing", lambda t: ["--candidate", str(t / "mine.py") + ":build"], 2,
     ["mine.py"]),
    ("candidate: syntax error", lambda t: ["--candidate", str(_syntax(t)) + ":build"], 2,
     ["SyntaxError"]),
    ("candidate: attribute missing", lambda t: ["--candidate", f"{FIX}/good_reference.py:nope"],
     2, ["nope"]),
    ("candidate: not a candidate", lambda t: ["--candidate", f"{FIX}/not_a_candidate.py:build"],
     2, ["not_a_candidate.py"]),
    ("candidate: backward raises", lambda t: ["--candidate", f"{FIX}/bad_raises.py:build"], 1,
     ["H2", "RuntimeError"]),
    ("candidate: NaN gradient", lambda t: ["--candidate", f"{FIX}/bad_nan.py:build"], 1,
     ["H2", "NaN"]),
    ("candidate: wrong shape", lambda t: ["--candidate", f"{FIX}/bad_shapes.py:build"], 1,
     ["H3", "shape"]),
    ("candidate: None gradient", lambda t: ["--candidate", f"{FIX}/bad_none_grad.py:build"], 1,
     ["H2", "None"]),
    ("candidate: mutates its weights", lambda t: ["--candidate", f"{FIX}/bad_mutates.py:build"],
     1, ["H3", "in place"]),
    ("candidate: hangs", lambda t: ["--candidate", f"{FIX}/bad_hangs.py:build", "--timeout", "2"],
     1, ["H1", "still running"]),
]


def _mk(p):
    p.mkdir()
    return p


def _file(p):
    p.write_text("not what was expected\n")
    return p


def _syntax(t):
    p = t / "broken.py"
    p.write_text("def build(seed=0)\n    return None\n")
    return p


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tmp_path, capsys, monkeypatch):
    name, argv, code, words = case
    monkeypatch.delenv("USPS_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data/usps here
    work = tmp_path / "w"
    work.mkdir()
    keep = work / "earlier.json"
    keep.write_text(SENTINEL)
    args = argv(work)
    if "--data" not in args:
        from harness import data as D

        monkeypatch.setattr(D, "load_usps", _nothing)
    rc = main(args + ["--samples", "1", "--no-progress"] if "--samples" not in args
              else args + ["--no-progress"])
    out = capsys.readouterr().out
    assert rc == code, out
    flat = " ".join(out.split())
    for w in words:
        assert w in flat, f"{name}: {w!r} not in output:\n{out}"
    assert "Traceback" not in out
    assert keep.read_text() == SENTINEL, "an earlier result was lost"
    assert not list(work.rglob("*.tmp")), "a temporary file was left behind"
    if name.startswith("report:"):
        assert (work / "ok.md").exists(), "the report that could be written was not"


def _nothing(*a, **k):
    from harness.data import DataError

    raise DataError("no USPS data (test stand-in)")


def test_catalog_has_at_least_20_cases():
    assert len(CASES) >= 20


def test_disk_full_while_writing_a_report(tmp_path, capsys, monkeypatch, no_data):
    """ENOSPC during the JSON report: exit 2 naming the file, the console report and the
    other report are complete, the earlier result survives, no temporary file is left."""
    import errno

    import reference.atomic as atomic

    real_fsync = atomic.os.fsync
    target = tmp_path / "full.json"
    keep = tmp_path / "earlier.json"
    keep.write_text(SENTINEL)

    def fsync(fd):
        import os

        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / ".full.json.")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    rc = main(["--samples", "1", "--json", str(target), "--markdown", str(tmp_path / "r.md"),
               "--no-progress"])
    out = " ".join(capsys.readouterr().out.split())
    assert rc == 2
    assert "full.json" in out and "No space left" in out and "PASS:" in out
    assert (tmp_path / "r.md").exists() and not target.exists()
    assert keep.read_text() == SENTINEL
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.data
def test_corrupt_checkpoint_on_resume_is_named(usps_dir, tmp_path, capsys):
    """`verify train --resume` on a damaged checkpoint: exit 2 naming the file; the pass
    that was finished before is still on disk, untouched."""
    run = tmp_path / "run"
    base = ["train", "--data", str(usps_dir), "--train-limit", "40", "--optimizer", "sgd",
            "--out", str(run), "--no-progress"]
    assert main(base + ["--passes", "1"]) == 0
    pfile = run / "checkpoint" / "params-0001.npz"
    raw = bytearray(pfile.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pfile.write_bytes(bytes(raw))
    state = (run / "checkpoint").glob("*.json")
    before = {p.name: p.read_bytes() for p in state}
    capsys.readouterr()
    assert main(base + ["--passes", "2", "--resume"]) == 2
    cap = capsys.readouterr()
    msg = " ".join((cap.out + cap.err).split())
    assert "params-0001.npz" in msg and "Traceback" not in msg
    assert pfile.read_bytes() == bytes(raw), "the damaged checkpoint must be left for study"
    assert {p.name: p.read_bytes() for p in (run / "checkpoint").glob("*.json")} == before


def test_read_only_reports_folder(tmp_path, capsys, monkeypatch, no_data):
    """EACCES creating the JSON report (a read-only folder; chmod cannot show it to root):
    exit 2 naming the path, the console report and the other report are complete."""
    import errno

    import reference.atomic as atomic

    real = atomic.tempfile.mkstemp
    locked = tmp_path / "locked"
    locked.mkdir()

    def mkstemp(*a, dir=None, **k):
        if dir is not None and str(dir).startswith(str(locked)):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    rc = main(["--samples", "1", "--json", str(locked / "o.json"), "--markdown",
               str(tmp_path / "r.md"), "--no-progress"])
    out = " ".join(capsys.readouterr().out.split())
    assert rc == 2 and "o.json" in out and "Permission denied" in out and "PASS:" in out
    assert (tmp_path / "r.md").exists() and not list(locked.iterdir())
