"""The USPS zip-code digits of LeCun et al. (1989): find, read, validate; synthetic stand-ins.

Paper: 7,291 training and 2,007 test digits, 16 x 16 grey levels in [-1, 1], deslanted and
size-normalised. Arrays here: x (N, 1, 16, 16) float64, y (N,) int64 class labels 0..9.

Where the data comes from, first match wins:
    1. the `location` argument, else the environment variable USPS_DATA (a folder);
    2. else the default folders ./data/usps and ../shared/data/usps, relative to the current
       directory and to the repository root;
    3. else the public hub dataset `flwrlabs/usps` (needs the optional extra
       `pip install huggingface_hub`), unless `allow_hub=False`.
A folder may hold either layout (the same images in the same order):
    text     zip.train.gz, zip.test.gz: per line a label then 256 values in [-1, 1]; read as is.
    parquet  data/train-00000-of-00001.parquet, data/test-00000-of-00001.parquet (or the two
             files directly in the folder): column `image` = struct with PNG `bytes` (mode L,
             0..255), column `label` int64; pixels p become p / 127.5 - 1.
Every failure raises DataError (a ValueError) naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ENV_VAR = "USPS_DATA"
HUB_REPO = "flwrlabs/usps"
TEXT_FILES = {"train": "zip.train.gz", "test": "zip.test.gz"}
PARQUET_FILES = {
    "train": "train-00000-of-00001.parquet",
    "test": "test-00000-of-00001.parquet",
}
COUNTS = {"train": 7291, "test": 2007}
SIDE = 16
# Values are stored with three decimals; 1e-6 only absorbs float rounding, not bad data.
RANGE_TOL = 1e-6
REPO_ROOT = Path(__file__).resolve().parents[1]


class DataError(ValueError):
    """The USPS data could not be found or a file does not hold what was expected."""


@dataclass
class USPS:
    train_x: np.ndarray = field(repr=False)  # (7291, 1, 16, 16) float64 in [-1, 1]
    train_y: np.ndarray = field(repr=False)  # (7291,) int64 in 0..9
    test_x: np.ndarray = field(repr=False)  # (2007, 1, 16, 16)
    test_y: np.ndarray = field(repr=False)  # (2007,)
    source: str  # "text:<folder>", "parquet:<folder>" or "hub:flwrlabs/usps"


# ---------------------------------------------------------------- validation


def validate(x: np.ndarray, y: np.ndarray, name: str, expect_count: int | None) -> None:
    """Raise DataError (naming `name`) unless x is (N,1,16,16) in [-1,1] and y is (N,) in 0..9."""
    if x.ndim != 4 or x.shape[1:] != (1, SIDE, SIDE):
        raise DataError(f"{name}: expected images of shape (N, 1, 16, 16), got {x.shape}")
    if y.shape != (x.shape[0],):
        raise DataError(f"{name}: {x.shape[0]} images but labels of shape {y.shape}")
    if expect_count is not None and x.shape[0] != expect_count:
        raise DataError(f"{name}: expected {expect_count} digits, found {x.shape[0]}")
    bad = np.flatnonzero((y < 0) | (y > 9))
    if bad.size:
        raise DataError(f"{name}: labels must be 0..9; digit {bad[0]} (counting from 0) has "
                        f"label {y[bad[0]]}")
    flat = x.reshape(x.shape[0], -1)
    nan_rows = np.flatnonzero(np.isnan(flat).any(axis=1))
    if nan_rows.size:
        raise DataError(f"{name}: digit {nan_rows[0]} (counting from 0) holds NaN values "
                        f"({nan_rows.size} such)")
    out = np.abs(flat) > 1 + RANGE_TOL
    if out.any():
        i = int(np.flatnonzero(out.any(axis=1))[0])
        worst = flat[i][np.argmax(np.abs(flat[i]))]
        raise DataError(f"{name}: values must lie in [-1, 1]; digit {i} (counting from 0) "
                        f"has {worst:.6g}")


# ---------------------------------------------------------------- text layout


def _text_diagnose(path: Path, text: str) -> None:
    """Find the first malformed line of a text file and raise DataError about it."""
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 1 + SIDE * SIDE:
            last = " (the last line: is the file truncated?)" if number >= len(lines) - 1 else ""
            raise DataError(
                f"{path}, line {number}: expected 257 values (a label, then 16 x 16 = 256 "
                f"pixels), found {len(tokens)}{last}"
            )
        for column, token in enumerate(tokens, start=1):
            try:
                float(token)
            except ValueError:
                raise DataError(
                    f"{path}, line {number}, value {column}: expected a number, got {token!r}"
                ) from None


def read_text(path: str | Path, *, expect_count: int | None = None) -> tuple[np.ndarray, ...]:
    """Read one classic text file (gzip). Returns x (N, 1, 16, 16) float64, y (N,) int64."""
    import pandas as pd

    path = Path(path)
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: not a readable gzip file ({type(exc).__name__}: {exc}); expected the "
            "gzip-compressed text of the classic USPS distribution"
        ) from exc
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: expected ASCII text of numbers, found binary data") from exc
    if not text.strip():
        raise DataError(f"{path}: file is empty; expected one digit per line")
    # Fast path: pandas' C parser (about 0.2 s for the training file); on any doubt, the slow
    # line-by-line diagnosis names the offending line.
    try:
        frame = pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, dtype=np.float64)
        values = frame.to_numpy()
    except ValueError:
        values = None
    if values is None or values.shape[1] != 1 + SIDE * SIDE or np.isnan(values).any():
        _text_diagnose(path, text)  # raises if any line is malformed
    if values is None or values.shape[1] != 1 + SIDE * SIDE:
        raise DataError(f"{path}: could not parse as lines of 257 numbers")
    labels = values[:, 0]
    if not np.all(labels == np.round(labels)):
        i = int(np.flatnonzero(labels != np.round(labels))[0])
        raise DataError(f"{path}: digit {i} (counting from 0) has label {labels[i]:g}; "
                        "expected a whole number")
    x = np.ascontiguousarray(values[:, 1:]).reshape(-1, 1, SIDE, SIDE)
    y = labels.astype(np.int64)
    validate(x, y, str(path), expect_count)
    return x, y


# ---------------------------------------------------------------- parquet layout


def read_parquet(path: str | Path, *, expect_count: int | None = None) -> tuple[np.ndarray, ...]:
    """Read one hub-layout parquet file, decoding the PNGs. Returns x (N,1,16,16), y (N,)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})"
        ) from exc
    names = table.schema.names
    image_type = table.schema.field("image").type if "image" in names else None
    if (
        "label" not in names
        or image_type is None
        or not pa.types.is_struct(image_type)
        or image_type.get_field_index("bytes") < 0
    ):
        raise DataError(
            f"{path}: expected columns 'image' (a struct with PNG 'bytes') and 'label' "
            f"(int64), found {', '.join(f'{n} ({table.schema.field(n).type})' for n in names)}"
        )
    label_col = table.column("label")
    if not pa.types.is_integer(label_col.type) or label_col.null_count:
        raise DataError(
            f"{path}: column 'label' must be integers without nulls, got {label_col.type} "
            f"with {label_col.null_count} nulls"
        )
    y = label_col.to_numpy().astype(np.int64)
    blobs = table.column("image").combine_chunks().field("bytes").to_pylist()
    x = np.empty((len(blobs), 1, SIDE, SIDE), dtype=np.float64)
    for i, blob in enumerate(blobs):
        if blob is None:
            raise DataError(f"{path}, row {i}: image has no PNG bytes")
        try:
            with Image.open(io.BytesIO(blob)) as img:
                img.load()
                mode, size = img.mode, img.size
                pixels = np.asarray(img, dtype=np.uint8) if mode == "L" else None
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(
                f"{path}, row {i}: image bytes are not a readable PNG ({type(exc).__name__}: "
                f"{exc})"
            ) from exc
        if mode != "L" or size != (SIDE, SIDE):
            raise DataError(
                f"{path}, row {i}: expected a 16 x 16 grey-level (mode L) PNG, got mode "
                f"{mode} size {size[0]} x {size[1]}"
            )
        x[i, 0] = pixels
    x = x / 127.5 - 1.0
    validate(x, y, str(path), expect_count)
    return x, y


# ---------------------------------------------------------------- finding the data


def _layouts(folder: Path) -> tuple[dict[str, dict[str, Path]], str]:
    """Complete layouts present in `folder` ({layout: {split: path}}) and a note on gaps."""
    found: dict[str, dict[str, Path]] = {}
    notes = []
    text = {s: folder / f for s, f in TEXT_FILES.items()}
    if all(p.is_file() for p in text.values()):
        found["text"] = text
    elif any(p.is_file() for p in text.values()):
        notes.append(f"only one of {' and '.join(TEXT_FILES.values())} present")
    for sub in (folder / "data", folder):
        parquet = {s: sub / f for s, f in PARQUET_FILES.items()}
        if all(p.is_file() for p in parquet.values()):
            found["parquet"] = parquet
            break
        if any(p.is_file() for p in parquet.values()):
            notes.append(f"only one of the two parquet files present in {sub}")
    return found, "; ".join(notes)


def default_locations() -> list[Path]:
    """The default folders, in search order, without duplicates."""
    places = []
    for base in (Path.cwd(), REPO_ROOT):
        for rel in ("data/usps", "../shared/data/usps"):
            place = (base / rel).resolve()
            if place not in places:
                places.append(place)
    return places


def _read_local(
    layouts: dict[str, dict[str, Path]], prefer: str | None, expect_counts: bool
) -> USPS:
    kind = prefer if prefer in layouts else ("text" if "text" in layouts else "parquet")
    reader = read_text if kind == "text" else read_parquet
    paths = layouts[kind]
    arrays = {
        split: reader(path, expect_count=COUNTS[split] if expect_counts else None)
        for split, path in paths.items()
    }
    return USPS(*arrays["train"], *arrays["test"], source=f"{kind}:{paths['train'].parent}")


def _hub_download(filename: str) -> Path:
    """Fetch one file of the hub dataset into the huggingface_hub cache; return its path."""
    from huggingface_hub import hf_hub_download  # optional extra, imported only when needed

    return Path(hf_hub_download(repo_id=HUB_REPO, repo_type="dataset", filename=filename))


def _read_hub(expect_counts: bool) -> USPS:
    arrays = {}
    for split, name in PARQUET_FILES.items():
        path = _hub_download(f"data/{name}")
        arrays[split] = read_parquet(path, expect_count=COUNTS[split] if expect_counts else None)
    return USPS(*arrays["train"], *arrays["test"], source=f"hub:{HUB_REPO}")


def load_usps(
    location: str | Path | None = None,
    *,
    prefer: str | None = None,
    allow_hub: bool = True,
    expect_counts: bool = True,
) -> USPS:
    """Find and read the USPS digits; raise DataError with everything tried if none are found.

    location       a folder holding either layout; default: the USPS_DATA environment
                   variable, else ./data/usps or ../shared/data/usps (relative to the current
                   directory, then to the repository root).
    prefer         "text" or "parquet": which layout to read when a folder holds both.
                   ASSUMPTION: text is the default because it carries the original values
                   exactly, while the PNGs are quantised to 1/127.5.
    allow_hub      download `flwrlabs/usps` with huggingface_hub when no local folder has the
                   data. ASSUMPTION: a folder the user names (argument or USPS_DATA) is never
                   replaced by a download, so that a typo in a path is reported, not hidden.
    expect_counts  check 7,291 / 2,007 digits; False only for small test fixtures.
    Files that are present but malformed raise at once; no fallback hides them.
    """
    if prefer not in (None, "text", "parquet"):
        raise ValueError(f"load_usps: prefer must be None, 'text' or 'parquet', got {prefer!r}")
    env = os.environ.get(ENV_VAR, "").strip()
    if location is not None:
        places, explicit = [(Path(location), "given as argument")], True
    elif env:
        places, explicit = [(Path(env), f"from ${ENV_VAR}")], True
    else:
        places, explicit = [(p, "default") for p in default_locations()], False
    tried = []
    for place, origin in places:
        if not place.exists():
            tried.append(f"{place} ({origin}): no such folder")
        elif not place.is_dir():
            tried.append(f"{place} ({origin}): is a file, expected a folder")
        else:
            layouts, gaps = _layouts(place)
            if layouts:
                return _read_local(layouts, prefer, expect_counts)
            tried.append(
                f"{place} ({origin}): holds neither {' + '.join(TEXT_FILES.values())} nor "
                f"data/{PARQUET_FILES['train']} + data/{PARQUET_FILES['test']}"
                + (f" ({gaps})" if gaps else "")
            )
    if explicit:
        tried.append(f"hub {HUB_REPO}: not tried, because a folder was named")
    elif not allow_hub:
        tried.append(f"hub {HUB_REPO}: not tried (allow_hub=False)")
    else:
        try:
            return _read_hub(expect_counts)
        except ImportError:
            tried.append(
                f"hub {HUB_REPO}: huggingface_hub is not installed "
                "(pip install huggingface_hub, or the project's [hub] extra)"
            )
        except DataError:
            raise
        except Exception as exc:  # network and hub errors come in many types; report any
            tried.append(f"hub {HUB_REPO}: download failed ({type(exc).__name__}: {exc})")
    steps = "; ".join(f"({i}) {t}" for i, t in enumerate(tried, start=1))
    raise DataError(
        f"No USPS digits found. Tried: {steps}. Give a folder holding zip.train.gz and "
        f"zip.test.gz, or data/{PARQUET_FILES['train']} and data/{PARQUET_FILES['test']}, "
        f"as the location argument or in ${ENV_VAR}, or install huggingface_hub to download "
        f"{HUB_REPO}."
    )


# ---------------------------------------------------------------- checksums


def verify_checksums(folder: str | Path) -> dict[Path, bool]:
    """SHA-256 of each file listed in folder/SHA256SUMS: {path: matches}; missing files False."""
    folder = Path(folder)
    sums = folder / "SHA256SUMS"
    try:
        lines = sums.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{sums}: cannot read the checksum list ({exc})") from exc
    result: dict[Path, bool] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")  # '*' marks binary mode in sha256sum output
        if len(digest) != 64 or not name or any(c not in "0123456789abcdef" for c in digest):
            raise DataError(f"{sums}, line {number}: expected '<64 hex digits>  <file>'")
        path = folder / name
        if not path.is_file():
            result[path] = False
            continue
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        result[path] = h.hexdigest() == digest.lower()
    return result


# ---------------------------------------------------------------- synthetic digits


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 14) -> list:
    t = np.linspace(0, 2 * np.pi, n + 1)
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t)))


# Strokes of each digit as polylines in a unit box, x to the right, y down.
_STROKES = {
    0: [_ellipse(0.5, 0.5, 0.3, 0.42)],
    1: [[(0.35, 0.25), (0.55, 0.08), (0.55, 0.92)]],
    2: [[(0.2, 0.3), (0.35, 0.1), (0.65, 0.1), (0.8, 0.3), (0.7, 0.5), (0.2, 0.9),
         (0.85, 0.9)]],
    3: [[(0.2, 0.12), (0.78, 0.12), (0.45, 0.45), (0.75, 0.58), (0.78, 0.8), (0.55, 0.92),
         (0.2, 0.85)]],
    4: [[(0.65, 0.92), (0.65, 0.08), (0.15, 0.65), (0.88, 0.65)]],
    5: [[(0.8, 0.1), (0.28, 0.1), (0.24, 0.45), (0.6, 0.42), (0.8, 0.6), (0.75, 0.85),
         (0.5, 0.93), (0.2, 0.85)]],
    6: [[(0.72, 0.08), (0.38, 0.32), (0.22, 0.65), (0.35, 0.92), (0.65, 0.92), (0.8, 0.72),
         (0.65, 0.52), (0.35, 0.55), (0.24, 0.68)]],
    7: [[(0.15, 0.1), (0.85, 0.1), (0.42, 0.92)]],
    8: [_ellipse(0.5, 0.28, 0.22, 0.2), _ellipse(0.5, 0.7, 0.28, 0.22)],
    9: [_ellipse(0.5, 0.32, 0.26, 0.22), [(0.76, 0.32), (0.62, 0.92)]],
}
_SEGMENTS = {
    d: np.array([(a + b) for line in lines for a, b in zip(line[:-1], line[1:])])  # (S, 4)
    for d, lines in _STROKES.items()
}


def synthetic_batch(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n stroke-drawn digits with random pose and pen width: x (n,1,16,16) in [-1,1], y (n,).

    For runs without the real data; the same (n, seed) gives the same arrays.
    """
    if n < 0:
        raise ValueError(f"synthetic_batch: n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n).astype(np.int64)
    centres = (np.arange(SIDE) + 0.5) / SIDE
    px, py = np.meshgrid(centres, centres)  # (16, 16) each; row index is y
    pix = np.stack([px.ravel(), py.ravel()], axis=1)  # (256, 2)
    x = np.empty((n, 1, SIDE, SIDE), dtype=np.float64)
    for i in range(n):
        seg = _SEGMENTS[int(y[i])]
        angle, shear = rng.uniform(-0.15, 0.15), rng.uniform(-0.2, 0.2)
        scale = rng.uniform(0.8, 0.98, size=2)
        c, s = np.cos(angle), np.sin(angle)
        pose = np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]]) * scale
        shift = 0.5 + rng.uniform(-0.04, 0.04, size=2)
        a = (seg[:, :2] - 0.5) @ pose.T + shift  # (S, 2) segment starts
        b = (seg[:, 2:] - 0.5) @ pose.T + shift  # (S, 2) segment ends
        ab = b - a
        t = np.einsum("psk,sk->ps", pix[:, None, :] - a, ab) / np.maximum((ab**2).sum(1), 1e-12)
        near = a + np.clip(t, 0, 1)[..., None] * ab  # (256, S, 2) nearest point on each segment
        dist = np.sqrt(((pix[:, None, :] - near) ** 2).sum(-1)).min(axis=1)  # (256,)
        width = rng.uniform(0.03, 0.06)
        ink = np.clip(1.0 - (dist - width) / 0.06, 0.0, 1.0)
        x[i, 0] = (2.0 * ink - 1.0).reshape(SIDE, SIDE)
    return x, y
