"""Load a candidate from a built-in name, a Python file or an importable module.

    load_candidate("notebook-fixed", seed)          a built-in (candidates/registry.py)
    load_candidate("path/to/mine.py:build", seed)   a file; attr after the last ':'
    load_candidate("mypkg.mynet:MyNet", seed)       an importable module

attr may be a candidate instance, a class, or a factory taking no argument or `seed`.
Loading a file or module IMPORTS AND RUNS ITS CODE with your permissions: load only code you
trust. The file's folder is put on sys.path while it is imported, so it can import its
neighbours. Every failure is a CandidateLoadError whose message names the file or module and
says what is wrong; `check_candidate` names the protocol member a loaded object lacks.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path

from candidates.registry import BUILTINS, CandidateLoadError, MissingExtraError, build
from reference.spec import NetSpec

__all__ = ["CandidateLoadError", "MissingExtraError", "load_candidate", "check_candidate"]

CANDIDATE_MEMBERS = ("name", "spec", "layers", "loss", "loss_grad")
LAYER_MEMBERS = ("name", "maps_to", "forward", "backward", "get_params", "set_params")
LAYER_NAMES = ("H1", "H2", "H3", "out")
_FORMS = "a built-in name, path/to/file.py:attr or package.module:attr"


def _last_line(e: BaseException, path: Path | None = None) -> str:
    """The exception's last line, with the line of `path` it came from (a SyntaxError's own
    line number, else the innermost frame in that file)."""
    text = traceback.format_exception_only(type(e), e)[-1].strip()
    if isinstance(e, SyntaxError) and e.lineno:
        return f"{text} (line {e.lineno})"
    if path is not None:
        mine = [f for f in traceback.extract_tb(e.__traceback__)
                if Path(f.filename).resolve() == path.resolve()]
        if mine:
            return f"{text} (line {mine[-1].lineno})"
    return text


def _is_path(left: str) -> bool:
    return left.endswith(".py") or "/" in left or "\\" in left


def _import_file(path: Path):
    if path.is_dir():
        raise CandidateLoadError(f"{path}: is a folder; give the Python file, as "
                                 "path/to/file.py:attr")
    if not path.is_file():
        raise CandidateLoadError(f"{path}: no such file")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    mod_name = f"_candidate_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise CandidateLoadError(f"{path}: not a loadable Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # user code: SystemExit and the like are load errors too
        sys.modules.pop(mod_name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise CandidateLoadError(f"{path}: importing it failed: {_last_line(e, path)}") from e
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _import_module(name: str):
    try:
        return importlib.import_module(name)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        raise CandidateLoadError(f"module {name}: importing it failed: {_last_line(e)}") from e


def _instantiate(obj, where: str, seed: int):
    """A class or factory -> its product (called with seed when it takes one)."""
    if not callable(obj) or _looks_like_candidate(obj):
        return obj
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        params = {}
    required = [p for p in params.values() if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    try:
        if "seed" in params:
            return obj(seed=seed)
        if not required:
            return obj()
        if len(required) == 1 and required[0].kind != inspect.Parameter.KEYWORD_ONLY:
            return obj(seed)
    except CandidateLoadError:
        raise
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        raise CandidateLoadError(f"{where}: calling it to build the candidate failed: "
                                 f"{_last_line(e)}") from e
    raise CandidateLoadError(
        f"{where}: a factory must take no argument or `seed`; it needs "
        f"{[p.name for p in required]}"
    )


def _looks_like_candidate(obj) -> bool:
    return not inspect.isclass(obj) and all(hasattr(obj, m) for m in CANDIDATE_MEMBERS)


def check_candidate(obj, where: str = "candidate") -> None:
    """Raise CandidateLoadError naming the first protocol member `obj` lacks or gets wrong."""
    kind = type(obj).__name__
    missing = [m for m in CANDIDATE_MEMBERS if not hasattr(obj, m)]
    if missing:
        raise CandidateLoadError(f"{where}: a {kind} is not a candidate: it has no {missing} "
                                 f"(a candidate needs {list(CANDIDATE_MEMBERS)})")
    for m in ("loss", "loss_grad"):
        if not callable(getattr(obj, m)):
            raise CandidateLoadError(f"{where}: candidate member {m!r} is not callable")
    if obj.spec is not None and not isinstance(obj.spec, NetSpec):
        raise CandidateLoadError(f"{where}: spec must be a reference.spec.NetSpec or None, "
                                 f"got {type(obj.spec).__name__}")
    layers = obj.layers
    if not isinstance(layers, (list, tuple)) or not layers:
        raise CandidateLoadError(f"{where}: layers must be a non-empty list, got {layers!r}")
    seen = []
    for n, layer in enumerate(layers):
        lwhere = f"{where}: layers[{n}]"
        lack = [m for m in LAYER_MEMBERS if not hasattr(layer, m)]
        if lack:
            raise CandidateLoadError(f"{lwhere} ({type(layer).__name__}) is not a candidate "
                                     f"layer: it has no {lack}")
        for m in LAYER_MEMBERS[2:]:
            if not callable(getattr(layer, m)):
                raise CandidateLoadError(f"{lwhere}: member {m!r} is not callable")
        if layer.name not in LAYER_NAMES or layer.name in seen:
            raise CandidateLoadError(f"{lwhere}: name {layer.name!r} must be one of "
                                     f"{list(LAYER_NAMES)}, each used once")
        seen.append(layer.name)
        if layer.maps_to is not None:
            if layer.maps_to not in LAYER_NAMES:
                raise CandidateLoadError(f"{lwhere}: maps_to {layer.maps_to!r} must be None or "
                                         f"one of {list(LAYER_NAMES)}")
            for m in ("from_reference", "to_reference"):
                if not callable(getattr(layer, m, None)):
                    raise CandidateLoadError(f"{lwhere}: maps_to={layer.maps_to!r} needs a "
                                             f"callable {m}")


def load_candidate(ref: str, seed: int = 0):
    """Build or load the candidate `ref` (see the module docstring), checked against the
    protocol. Loading a file or module runs its code."""
    ref = str(ref).strip()
    if ref in BUILTINS:
        cand = build(ref, seed)
        check_candidate(cand, f"built-in {ref!r}")
        return cand
    left, sep, attr = ref.rpartition(":")
    if not sep or not left or not attr or "/" in attr or "\\" in attr:
        if ref.endswith(".py"):
            msg = f"{ref}: name the object to load, e.g. {ref}:build"
        else:
            msg = f"{ref!r} is not a built-in ({sorted(BUILTINS)})"
        raise CandidateLoadError(f"{msg}; give {_FORMS}")
    if _is_path(left):
        module, where = _import_file(Path(left)), left
    else:
        module, where = _import_module(left), f"module {left}"
    if not hasattr(module, attr):
        names = sorted(n for n in vars(module) if not n.startswith("_"))
        raise CandidateLoadError(f"{where}: no attribute {attr!r}; it defines {names}")
    where = f"{where}:{attr}"
    cand = _instantiate(getattr(module, attr), where, seed)
    check_candidate(cand, where)
    return cand
