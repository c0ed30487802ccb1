"""Write a file so that readers see the old version or the new one, never a partial one:
a temporary file in the same folder, flushed to disk, then renamed over the target. The
file gets the permissions a plain open() would (0666 less the umask, not mkstemp's 0600),
and the temporary file is removed on any failure, Ctrl-C included.

A rename replaces a *name*, so it is only right when the name is a regular file's (or is
new). Symlinks are followed, and devices, FIFOs and sockets are written in place: see
atomic_write."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable, binary: bool = False) -> Path:
    """Call `write(fh)` on a file handle for `path` and return `path`. By kind of target:

    - a regular file, or nothing yet: write a temporary file next to it (missing folders
      are created), fsync, os.replace it over the target. Readers never see half a file;
      on failure the old file is intact and no temporary file is left.
    - a symlink: the same, on the file the link points at (os.path.realpath), so the
      link stays a link and its target gets the new content. A dangling link creates
      the file it names if that file's folder exists; otherwise OSError(ENOENT).
    - a character device, FIFO or socket (/dev/null, /dev/stdout on a terminal or pipe,
      a named pipe): open it and write into it. Renaming over it would replace the
      device node or pipe with a regular file that nobody reads; atomicity means
      nothing there. Opening a FIFO waits for a reader, as a shell redirection does.

    Every failure, ENOSPC from /dev/full included, is raised as an OSError (callers such
    as harness.report.files turn it into a message naming the path)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode  # follows symlinks, /dev/stdout's included
    except FileNotFoundError:
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        with open(path, "wb" if binary else "w", **_text(binary)) as fh:
            write(fh)
        return path
    if path.is_symlink():
        real = Path(os.path.realpath(path))
        if not real.parent.is_dir():
            raise OSError(errno.ENOENT, f"symlink to {real}, whose folder does not exist",
                          str(path))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        real = Path(os.path.realpath(path))
    _replace(real, write, binary)
    return path


def _text(binary: bool) -> dict:
    return {} if binary else {"encoding": "utf-8"}


def _replace(path: Path, write: Callable, binary: bool) -> None:
    """Temporary file in path's folder, written, fsynced, renamed to path."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb" if binary else "w", **_text(binary)) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
