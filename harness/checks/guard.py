"""Run a candidate's code so that nothing it does can crash or hang the harness.

`call(fn, *args, where=..., timeout=...)` runs fn in a daemon thread. An exception becomes a
`CallFailed` naming where it happened, the exception's last line and the file and line of the
candidate's code that raised it; a call still running after `timeout` seconds becomes a
`CallFailed` saying it hung (the thread is abandoned: Python cannot kill a thread, and a
daemon thread does not keep the process alive at exit). A call not made at all, because an
earlier one hung, is a `CallFailed` with `skipped` set: the checks it feeds are NOT RUN.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback
from pathlib import Path

_HARNESS = Path(__file__).resolve().parents[1]  # harness/
_LIBRARIES = tuple(str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix})


class CallFailed(Exception):
    def __init__(self, where: str, reason: str, hung: bool = False, skipped: bool = False,
                 exc: BaseException | None = None):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason, self.hung, self.skipped = where, reason, hung, skipped
        self.exc = exc  # what the call raised, if it raised


@contextlib.contextmanager
def exits_refused():
    """While candidate code may run: os._exit raises SystemExit instead of ending the
    process, so a candidate that calls it is a finding (sys.exit already is one), never a
    silent exit 0 with no report. The harness itself never calls os._exit."""
    real = os._exit

    def refuse(code=0):
        raise SystemExit(f"os._exit({code}) was called; the harness does not let a "
                         "candidate end the process")

    os._exit = refuse
    try:
        yield
    finally:
        os._exit = real


def _raised_at(tb) -> str:
    """' (at file:line in func)' for the innermost frame outside the harness and the
    installed libraries (numpy's internals say less than the line of user code that called
    them), or '' when there is none."""
    for frame in reversed(traceback.extract_tb(tb)):
        path = Path(frame.filename).resolve()
        if _HARNESS in path.parents or str(path).startswith(_LIBRARIES):
            continue
        try:
            shown = path.relative_to(Path.cwd())
        except ValueError:
            shown = path
        return f" (at {shown}:{frame.lineno} in {frame.name})"
    return ""


def call(fn, *args, where: str, timeout: float | None = None):
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - a candidate may raise anything
            last = traceback.format_exception_only(type(e), e)[-1].strip()
            box["error"] = last + _raised_at(e.__traceback__)
            box["exc"] = e

    # TODO: a call that times out keeps running in its daemon thread (Python cannot stop a
    # thread), so a busy loop keeps a core busy until the process ends and slows what runs
    # after it. Running candidate calls in a child process that can be killed would close
    # this; it waits because candidates are plain objects, not picklable by contract.
    t = threading.Thread(target=target, daemon=True, name=f"candidate:{where}")
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise CallFailed(where, f"still running after {timeout:g} s (hung?); stopped "
                         "waiting for it", hung=True)
    if "error" in box:
        raise CallFailed(where, f"raised {box['error']}", exc=box["exc"])
    return box.get("value")
