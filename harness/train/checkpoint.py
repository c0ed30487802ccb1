"""Atomic training checkpoints: a parameter .npz plus a JSON state that names it by sha256.

Layout of a checkpoint folder:
    params-PPPP.npz     the parameters after pass PPPP (reference.params.save_params)
    checkpoint.json     {"pass", "params_file", "params_sha256", ...the caller's state}

Order of writes (each one atomic: temporary file, fsync, os.replace): the new .npz first,
then checkpoint.json, which is the commit point, then older .npz files are removed. A crash
at any moment leaves either the previous checkpoint or the new one, never a mixture.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from reference.atomic import atomic_write
from reference.params import Params, load_params, save_params
from reference.spec import NetSpec

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
