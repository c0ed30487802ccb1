"""Run a candidate's code so that nothing it does can crash or hang the harness.

`call(fn, *args, where=..., timeout=...)` runs fn in a daemon thread. An exception becomes a
`CallFailed` naming where it happened and the exception's last line; a call still running
after `timeout` seconds becomes a `CallFailed` saying it hung (the thread is abandoned: Python
cannot kill a thread, and a daemon thread does not keep the process alive at exit).
"""

from __future__ import annotations

import threading
import traceback


class CallFailed(Exception):
    def __init__(self, where: str, reason: str, hung: bool = False):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason, self.hung = where, reason, hung


def call(fn, *args, where: str, timeout: float | None = None):
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - a candidate may raise anything
            last = traceback.format_exception_only(type(e), e)[-1].strip()
            box["error"] = last

    t = threading.Thread(target=target, daemon=True, name=f"candidate:{where}")
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise CallFailed(where, f"still running after {timeout:g} s (hung?); stopped "
                         "waiting for it", hung=True)
    if "error" in box:
        raise CallFailed(where, f"raised {box['error']}")
    return box.get("value")
