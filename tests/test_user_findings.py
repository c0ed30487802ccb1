"""Failing tests for defects found by a new user exercising `verify` from the README.

Each test names its finding. All are fast: none runs the full set of checks.
"""

from __future__ import annotations

import argparse
import os
import stat

import numpy as np
import pytest

from harness import cli
from harness.report.files import ReportWriteError, write_atomic


# Finding 1: $USPS_DATA naming a folder with a corrupt zip.train.gz (or a folder that does not
# exist) is silently ignored: verify prints "no USPS data found" and checks a synthetic batch,
# so CI can pass without ever touching the real digits. The same folder given as --data is
# (correctly) exit 2 with "not a readable gzip file". Expected: a bad $USPS_DATA is bad input.
def test_finding1_corrupt_usps_data_env_is_not_silently_replaced_by_synthetic(tmp_path,
                                                                              monkeypatch):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "zip.train.gz").write_bytes(b"garbage, not gzip\n")
    (bad / "zip.test.gz").write_bytes(b"garbage, not gzip\n")
    monkeypatch.setenv("USPS_DATA", str(bad))
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(data=None, samples=4, seed=0)
    from rich.console import Console

    with pytest.raises(cli.UsageError, match="gzip"):
        cli.load_batch(args, Console(file=open(os.devnull, "w")))


def test_finding1b_missing_usps_data_env_folder_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("USPS_DATA", str(tmp_path / "typo"))
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(data=None, samples=4, seed=0)
    from rich.console import Console

    with pytest.raises(cli.UsageError, match="typo"):
        cli.load_batch(args, Console(file=open(os.devnull, "w")))


# Finding 2: `--json some_regular_file/out.json` fails with "cannot write here (File exists)",
# which is misleading (the problem is that the parent is a file, not a folder), and only after
# all checks have run.
def test_finding2_report_path_under_regular_file_message(tmp_path):
    f = tmp_path / "afile"
    f.write_text("hi")
    with pytest.raises(ReportWriteError) as ei:
        write_atomic(f / "out.json", "{}")
    msg = str(ei.value)
    assert "File exists" not in msg
    assert "not a folder" in msg or "Not a directory" in msg or "is a file" in msg


# Finding 3: report files are created with mode 0600 (tempfile.mkstemp) instead of honouring
# the umask like any other written file, so a JSON/Markdown report handed to CI or another
# user is unreadable by them.
def test_finding3_report_file_mode_honours_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_atomic(tmp_path / "out.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


# Finding 4: Ctrl-C while a report is being written leaves a hidden partial
# `.out.json.XXXX.tmp` next to the report: write_atomic cleans up only on OSError, not on
# KeyboardInterrupt (reference.params.save_params does handle BaseException).
def test_finding4_interrupt_during_report_write_leaves_no_tmp(tmp_path, monkeypatch):
    import harness.report.files as rf

    def boom(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(rf.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "out.json", "{}")
    assert list(tmp_path.iterdir()) == []


# Finding 5: `--params garbage.npz` (a text file) says "This file contains pickled (object)
# data. If you trust the file you can load it unsafely using allow_pickle=...", which is
# misleading (nothing is pickled) and invites the user to unpickle an untrusted file.
def test_finding5_garbage_params_message_does_not_suggest_unpickling(tmp_path):
    from reference.params import load_params
    from reference.spec import preset

    p = tmp_path / "garbage.npz"
    p.write_text("garbage\n")
    with pytest.raises(ValueError) as ei:
        load_params(p, preset("paper"))
    msg = str(ei.value)
    assert "pickle" not in msg.lower()


# Finding 6: `--samples 100000` with the real data fails with "no training digit of class 8
# left to take", which does not name --samples or the limit; with no data it is not bounded at
# all. Expected: a message naming --samples and how many can be taken.
def test_finding6_too_many_samples_message_names_the_option():
    y = np.repeat(np.arange(10), 3)  # 3 digits of each class
    data = argparse.Namespace(train_x=np.zeros((30, 1, 16, 16)), train_y=y)
    with pytest.raises(cli.UsageError, match="--samples"):
        cli.pick_digits(data, 100)


# Finding 7: `verify --help` advertises subcommands {selftest,train,gate}, but `gate` (and, in
# a clone of the committed tree, `selftest`) is not a choice: `verify gate --help` exits 2 with
# "invalid choice: 'gate' (choose from ...)". The usage line should list what exists.
def test_finding7_advertised_subcommands_exist():
    p = cli.build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    advertised = set(sub.metavar.strip("{}").split(","))
    assert advertised == set(sub.choices)
