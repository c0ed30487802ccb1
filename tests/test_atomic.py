"""reference/atomic.py by kind of target: regular file, symlink, dangling symlink, FIFO,
character device. Renaming over anything but a regular file replaced it (a user, as root,
turned /dev/full into a regular file with `verify --json /dev/full`)."""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest

from harness.report.files import ReportWriteError, write_atomic
from reference.atomic import atomic_write


def _no_tmp(folder):
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_regular_file_is_replaced_atomically(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "r.json"
    atomic_write(target, lambda fh: fh.write("old"))
    ino = target.stat().st_ino
    atomic_write(target, lambda fh: fh.write("new"))
    assert target.read_text() == "new" and target.stat().st_ino != ino  # renamed, not rewritten

    def boom(fh):
        fh.write("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, boom)
    assert target.read_text() == "new" and _no_tmp(target.parent)


def test_symlink_writes_its_target_and_stays_a_link(tmp_path):
    (tmp_path / "lt").mkdir()
    real = tmp_path / "target.json"
    real.write_text("old")
    link = tmp_path / "lt" / "link.json"
    link.symlink_to("../target.json")
    assert write_atomic(link, "new") == link
    assert link.is_symlink() and os.readlink(link) == "../target.json"
    assert real.read_text() == "new" and link.read_text() == "new"
    assert _no_tmp(tmp_path) and _no_tmp(tmp_path / "lt")


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "made.json")
    write_atomic(link, "x")
    assert link.is_symlink() and (tmp_path / "made.json").read_text() == "x"


def test_dangling_symlink_into_missing_folder_is_a_clear_error(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "nowhere" / "made.json")
    with pytest.raises(ReportWriteError, match="link.json.*folder does not exist"):
        write_atomic(link, "x")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()
    assert _no_tmp(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no os.mkfifo on this platform")
def test_fifo_is_written_in_place_and_its_reader_gets_the_bytes(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_atomic(fifo, "# report\n" * 10000)  # more than a pipe buffer
    reader.join(timeout=30)
    assert not reader.is_alive() and got == [b"# report\n" * 10000]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and _no_tmp(tmp_path)


def _char_device(path):
    if not (os.path.exists(path) and stat.S_ISCHR(os.stat(path).st_mode)):
        pytest.skip(f"{path} is missing or not a character device")


def test_dev_null_stays_a_character_device():
    _char_device("/dev/null")
    before = os.stat("/dev/null")
    atomic_write("/dev/null", lambda fh: fh.write("{}"))
    atomic_write("/dev/null", lambda fh: fh.write(b"\0" * 10), binary=True)
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_dev_full_raises_enospc_naming_the_path():
    _char_device("/dev/full")
    before = os.stat("/dev/full")
    with pytest.raises(OSError) as raw:
        atomic_write("/dev/full", lambda fh: fh.write("{}"))
    assert raw.value.errno == errno.ENOSPC
    with pytest.raises(ReportWriteError, match="/dev/full.*No space left"):
        write_atomic("/dev/full", "{}")
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_cli_json_to_dev_full_exits_2(capsys, no_data):
    _char_device("/dev/full")
    from harness.cli import main

    rc = main(["--samples", "1", "--json", "/dev/full", "--no-progress"])
    out = " ".join(capsys.readouterr().out.split())
    assert rc == 2 and "/dev/full" in out and "No space left" in out
    assert "wrote /dev/full" not in out
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
