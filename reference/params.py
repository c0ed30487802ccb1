"""Named parameter arrays of the 1989 network, their seeded initialisation, and .npz I/O.

Names and shapes (paper notation, see reference/spec.py):
    H1.w  (12, 1, 5, 5)   one 5x5 kernel per H1 map              300
    H1.b  (12, 8, 8)      untied: one bias per H1 unit           768   -> H1  1,068
    H2.w  (12, 8, 5, 5)   per H2 map, one 5x5 kernel for each of the 8 H1 maps it reads,
                          in increasing H1 map order (rows of T) 2,400
    H2.b  (12, 4, 4)      untied                                 192   -> H2  2,592
    H3.w  (30, 192)       (to, from); from = H2 flattened in C order     -> H3  5,790
    H3.b  (30,)
    out.w (10, 30)        (to, from)                                     -> out   310
    out.b (10,)                                                   total 9,760

Kernels are cross-correlation kernels (no flip in forward), as in torch.nn.functional.conv2d.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from reference.atomic import atomic_write
from reference.spec import PAPER_CONNECTIONS, PAPER_COUNTS, PAPER_TOTAL, PAPER_UNITS, NetSpec

LAYERS = ("H1", "H2", "H3", "out")


def param_shapes(spec: NetSpec) -> dict[str, tuple[int, ...]]:
    s = spec
    return {
        "H1.w": (s.h1_maps, 1, s.h1_kernel, s.h1_kernel),
        "H1.b": (s.h1_maps, s.h1_size, s.h1_size),
        "H2.w": (s.h2_maps, s.h2_inputs_per_map, s.h2_kernel, s.h2_kernel),
        "H2.b": (s.h2_maps, s.h2_size, s.h2_size),
        "H3.w": (s.h3_units, s.h2_maps * s.h2_size**2),
        "H3.b": (s.h3_units,),
        "out.w": (s.out_units, s.h3_units),
        "out.b": (s.out_units,),
    }


def check_paper_counts(spec: NetSpec) -> None:
    """Raise if the spec's sizes do not give the paper's 9,760 / 1,256 / 64,660."""
    counts = spec.layer_param_counts()
    shapes = param_shapes(spec)
    from_shapes = {
        L: sum(int(np.prod(shapes[f"{L}.{q}"])) for q in ("w", "b")) for L in LAYERS
    }
    if from_shapes != counts:
        raise AssertionError(f"parameter shapes give {from_shapes}, spec counts {counts}")
    problems = []
    if counts != PAPER_COUNTS:
        problems.append(f"free parameters per layer {counts}, paper {PAPER_COUNTS}")
    if sum(counts.values()) != PAPER_TOTAL:
        problems.append(f"{sum(counts.values())} free parameters, paper {PAPER_TOTAL}")
    if spec.unit_count() != PAPER_UNITS:
        problems.append(f"{spec.unit_count()} units, paper {PAPER_UNITS}")
    if spec.connection_count() != PAPER_CONNECTIONS:
        problems.append(f"{spec.connection_count()} connections, paper {PAPER_CONNECTIONS}")
    if problems:
        raise ValueError(f"spec {spec.name!r} does not match the paper: " + "; ".join(problems))


class Params(Mapping):
    """An ordered, fixed-shape set of named arrays. Copies on the way in and on `copy()`.

    Two implementations never share a Params' memory: each builds its own from `.copy()`
    or from `.arrays(dtype)`, which always returns fresh arrays.
    """

    def __init__(self, spec: NetSpec, arrays: Mapping[str, np.ndarray], *, check_paper=True):
        if check_paper:
            check_paper_counts(spec)
        shapes = param_shapes(spec)
        unknown = sorted(set(arrays) - set(shapes))
        missing = sorted(set(shapes) - set(arrays))
        if unknown or missing:
            raise ValueError(f"parameters: missing {missing}, unexpected {unknown}")
        self.spec = spec
        self._a: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            a = np.array(arrays[name], dtype=np.float64, copy=True)
            if a.shape != shape:
                raise ValueError(f"parameter {name}: expected shape {shape}, got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"parameter {name}: contains NaN or Inf")
            self._a[name] = a

    def __getitem__(self, name: str) -> np.ndarray:
        return self._a[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._a)

    def __len__(self) -> int:
        return len(self._a)

    def count(self) -> int:
        return sum(a.size for a in self._a.values())

    def arrays(self, dtype=np.float64) -> dict[str, np.ndarray]:
        """Fresh copies, safe to hand to another implementation."""
        return {k: np.array(v, dtype=dtype, copy=True) for k, v in self._a.items()}

    def copy(self) -> "Params":
        return Params(self.spec, self._a, check_paper=False)

    def checksum(self) -> str:
        h = hashlib.sha256()
        for k, v in self._a.items():
            h.update(k.encode())
            h.update(np.ascontiguousarray(v, dtype=np.float64).tobytes())
        return h.hexdigest()

    def flat(self) -> np.ndarray:
        return np.concatenate([v.ravel() for v in self._a.values()])


def init_params(spec: NetSpec, seed: int = 0) -> Params:
    """Seeded initialisation from the spec.

    Weights ~ U[-s/F**p, s/F**p] with s = spec.init_scale, p = spec.init_fanin_power and F
    the unit's fan-in. Biases follow spec.bias_init. Drawn in the fixed order of
    `param_shapes` from one numpy Generator, so a seed names one parameter set.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in param_shapes(spec).items():
        layer, kind = name.split(".")
        bound = spec.init_scale / spec.fan_in(layer) ** spec.init_fanin_power
        if kind == "w" or spec.bias_init == "uniform_fanin":
            arrays[name] = rng.uniform(-bound, bound, size=shape)
        elif spec.bias_init == "zero_hidden_out_minus1":
            arrays[name] = np.full(shape, -1.0 if layer == "out" else 0.0)
        else:
            raise ValueError(f"unknown bias_init {spec.bias_init!r} in spec {spec.name!r}")
    return Params(spec, arrays)


def save_params(params: Params, path: str | os.PathLike) -> Path:
    """Write an .npz atomically (reference/atomic.py). No pickled objects."""
    return atomic_write(path, lambda fh: np.savez(fh, **params.arrays()), binary=True)


def load_params(path: str | os.PathLike, spec: NetSpec) -> Params:
    """Read an .npz written by `save_params` (allow_pickle=False); errors name the file."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a lone .npy array
            raise ValueError(f"{path}: a single array ({type(z).__name__}), not an .npz "
                             "archive of named parameters (write one with save_params)")
        with z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such parameter file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        if str(e).startswith(f"{path}: a single array"):
            raise
        if "Object arrays" in str(e):
            why = "it holds pickled objects, which are never loaded"
        else:
            why = "not an .npz archive" if "pickle" in str(e) else str(e)
        raise ValueError(f"{path}: not a readable .npz parameter file ({why})") from None
    try:
        return Params(spec, arrays)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
