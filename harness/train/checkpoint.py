"""Atomic training checkpoints: a parameter .npz plus a JSON state that names it by sha256.

Layout of a checkpoint folder:
    params-PPPP.npz     the parameters after pass PPPP (reference.params.save_params)
    checkpoint.json     {"pass", "params_file", "params_sha256", ...the caller's state}

Order of writes (each one atomic: temporary file, fsync, os.replace): the new .npz first,
then checkpoint.json, which is the commit point, then older .npz files are removed. A crash
at any moment leaves either the previous checkpoint or the new one, never a mixture.

`check_saved_state` checks, field by field, what a resumed run reads from checkpoint.json
(config, pass_index, records, hessian, timings, the data identity, the generator state), so
that a hand-edited or damaged file is named with the field and never reaches the loop.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from reference.atomic import atomic_write
from reference.params import Params, load_params, save_params
from reference.spec import PRESETS, NetSpec

STATE_FILE = "checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint exists but cannot be used; the message names the file and the reason."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json_atomic(path: Path, obj: dict) -> None:
    atomic_write(path, lambda fh: json.dump(obj, fh, indent=1, sort_keys=True))


def save_checkpoint(folder: str | os.PathLike, params: Params, pass_index: int,
                    state: dict) -> Path:
    """Write the parameters after pass `pass_index` (1-based) and `state` (JSON-able)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"params-{pass_index:04d}.npz"
    save_params(params, folder / name)
    doc = dict(state)
    doc.update(pass_index=pass_index, params_file=name,
               params_sha256=sha256_file(folder / name))
    _write_json_atomic(folder / STATE_FILE, doc)
    for old in folder.glob("params-*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / STATE_FILE


def load_checkpoint(folder: str | os.PathLike, spec: NetSpec) -> tuple[Params, dict] | None:
    """(params, state) of the last complete checkpoint in `folder`, or None if there is none.

    Raises CheckpointError naming the file when the state is unreadable or the parameter
    file is missing or does not match the sha256 the state recorded.
    """
    folder = Path(folder)
    state_path = folder / STATE_FILE
    if not state_path.exists():
        return None
    try:
        state = json.loads(state_path.read_text())
        pfile = folder / state["params_file"]
        want = state["params_sha256"]
        int(state["pass_index"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{state_path}: not a readable checkpoint state ({e!r})") from None
    if not pfile.exists():
        raise CheckpointError(f"{state_path}: names parameter file {pfile.name}, which is "
                              f"missing")
    got = sha256_file(pfile)
    if got != want:
        raise CheckpointError(
            f"{pfile}: sha256 {got[:16]}... does not match {want[:16]}... recorded in "
            f"{state_path.name}; the checkpoint is corrupt (delete the folder to start over)")
    try:
        params = load_params(pfile, spec)
    except ValueError as e:
        raise CheckpointError(f"checkpoint: {e}") from None
    return params, state


# ------------------------------------------- what a resumed run reads, checked field by field


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_from(lo: int):
    return f"an int >= {lo}", lambda v: _is_int(v) and v >= lo


def _one_of(*names: str):
    return (" or ".join(map(repr, names)) + " (a string)",
            lambda v: isinstance(v, str) and v in names)


_RATE = ("a number > 0, or null", lambda v: v is None or (_is_number(v) and v > 0))
# every TrainConfig field: (what it must be, test)
CONFIG_RULES = {
    "preset": _one_of(*PRESETS), "optimizer": _one_of("sgd", "sdlm"),
    "lr": _RATE, "eta": _RATE, "mu": _RATE, "passes": _int_from(1), "seed": _int_from(0),
    "train_limit": ("an int >= 1, or null", lambda v: v is None or (_is_int(v) and v >= 1)),
    "holdout": _int_from(0), "impl": _one_of("numpy", "twin"),
    "dtype": _one_of("float64", "float32"), "hessian_patterns": _int_from(1),
}
RECORD_RULES = {"pass": _int_from(1), "split": ("a string", lambda v: isinstance(v, str)),
                "mse": ("a number", _is_number), "error_pct": ("a number", _is_number),
                "misses": _int_from(0), "n": _int_from(1)}

# the identity of the digits a run trains and evaluates on (Splits.identity); optional, as
# checkpoints written before it was recorded lack it
DATA_RULES = {
    "sha256": ("64 hex digits (a string)", lambda v: isinstance(v, str) and len(v) == 64
               and all(c in "0123456789abcdef" for c in v)),
    "source": ("a string", lambda v: isinstance(v, str)),
}


def _found(v) -> str:
    r = repr(v)
    return f"{r if len(r) <= 80 else r[:80] + '...'} (a {type(v).__name__})"


def _check_fields(obj, rules: dict, label: str, where: Path) -> None:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where}: {label} must be a JSON object; found {_found(obj)}")
    for name, (expected, ok) in rules.items():
        if name not in obj:
            raise CheckpointError(f"{where}: {label}.{name} is missing (expected {expected})")
        if not ok(obj[name]):
            raise CheckpointError(f"{where}: {label}.{name} must be {expected}; found "
                                  f"{_found(obj[name])}")


def check_saved_config(saved, where: Path) -> None:
    """Raise CheckpointError naming `where`, the field, what it must be and what was found,
    unless `saved` (a checkpoint's config) holds every TrainConfig field in type and range."""
    _check_fields(saved, CONFIG_RULES, "config", where)
    for k in ("lr",) if saved["optimizer"] == "sgd" else ("eta", "mu"):
        if saved[k] is None:
            raise CheckpointError(f"{where}: config.{k} must be a number > 0 for optimizer "
                                  f"{saved['optimizer']!r}; found None")


def _check_list(state: dict, name: str, where: Path, n: int | None = None) -> list:
    v = state.get(name)
    if not isinstance(v, list) or (n is not None and len(v) != n):
        size = f"a list of {n}" if n is not None else "a list"
        raise CheckpointError(f"{where}: {name} must be {size}; found {_found(v)}")
    return v


def check_saved_state(state: dict, where: Path) -> None:
    """check_saved_config, then the rest of what a resumed run reads from the checkpoint:
    pass_index (1 to config.passes), records (ending with that pass), hessian (one per
    pass), timings, rng; CheckpointError naming `where` and the field otherwise."""
    check_saved_config(state.get("config"), where)
    done, passes = state.get("pass_index"), state["config"]["passes"]
    if not (_is_int(done) and 1 <= done <= passes):
        raise CheckpointError(f"{where}: pass_index must be an int from 1 to config.passes "
                              f"({passes}); found {_found(done)}")
    records = _check_list(state, "records", where)
    for i, r in enumerate(records):
        _check_fields(r, RECORD_RULES, f"records[{i}]", where)
    if not records or records[-1]["pass"] != done:
        last = records[-1]["pass"] if records else "no records"
        raise CheckpointError(f"{where}: records must end with pass {done} (pass_index); "
                              f"found {last}")
    for i, h in enumerate(_check_list(state, "hessian", where, done)):
        if not (isinstance(h, dict) and all(map(_is_number, h.values()))):
            raise CheckpointError(f"{where}: hessian[{i}] must be an object of numbers; "
                                  f"found {_found(h)}")
    for name in ("pass_seconds", "eval_seconds"):
        if name in state and not all(map(_is_number, _check_list(state, name, where))):
            raise CheckpointError(f"{where}: {name} must hold numbers; found "
                                  f"{_found(state[name])}")
    if "data" in state:
        _check_fields(state["data"], DATA_RULES, "data", where)
    if not isinstance(state.get("rng"), dict):
        raise CheckpointError(f"{where}: rng must be a JSON object (a generator state); "
                              f"found {_found(state.get('rng'))}")
