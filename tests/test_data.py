"""harness/data.py: both local layouts, the hub path (no network), errors, checksums, synthetic.

Tiny synthetic files are written to tmp_path; tests marked `data` read the real digits.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import time
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from harness import data
from harness.data import DataError, load_usps

# Class counts 0..9 from /work/shared/data/usps/README.md.
README_COUNTS = {
    "train": [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644],
    "test": [359, 264, 198, 166, 200, 160, 170, 147, 166, 177],
}
# PNG pixels are truncated from the text values (README), so they differ by < 1 grey step.
LAYOUT_TOL = 1 / 127.5 + 1e-9


# ---------------------------------------------------------------- tiny fixture writers


def tiny_pixels(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 16, 16), dtype=np.uint8), np.arange(n) % 10


def text_lines(pixels: np.ndarray, labels: np.ndarray) -> list[str]:
    values = pixels.reshape(len(pixels), -1) / 127.5 - 1
    return [
        " ".join([f"{lab:.4f}"] + [f"{v:.4f}" for v in row]) for lab, row in zip(labels, values)
    ]


def write_text(folder: Path, pixels, labels, *, lines: list[str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = text_lines(pixels, labels) if lines is None else lines
    for name in ("zip.train.gz", "zip.test.gz"):
        (folder / name).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def write_parquet_file(path: Path, blobs: list, labels, *, names=("image", "label")) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = pa.array([{"bytes": b, "path": None} for b in blobs], type=image_type)
    table = pa.table({names[0]: images, names[1]: pa.array(labels, type=pa.int64())})
    pq.write_table(table, path)


def write_parquet(folder: Path, pixels, labels) -> None:
    blobs = [png_bytes(p) for p in pixels]
    for name in data.PARQUET_FILES.values():
        write_parquet_file(folder / "data" / name, blobs, labels)


@pytest.fixture
def no_defaults(tmp_path, monkeypatch):
    """Point every default location into an empty tmp folder and clear $USPS_DATA."""
    monkeypatch.delenv("USPS_DATA", raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "elsewhere" / "repo")
    return tmp_path


def fake_hub(monkeypatch, download) -> list[dict]:
    """Install a stand-in huggingface_hub module whose hf_hub_download calls `download`."""
    calls: list[dict] = []

    def hf_hub_download(**kwargs):
        calls.append(kwargs)
        return download(kwargs["filename"])

    module = types.ModuleType("huggingface_hub")
    module.hf_hub_download = hf_hub_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    return calls


# ---------------------------------------------------------------- layouts


def test_text_layout_values_as_written(tmp_path):
    pixels, labels = tiny_pixels(12, seed=1)
    write_text(tmp_path, pixels, labels)
    d = load_usps(tmp_path, expect_counts=False)
    expected = np.round(pixels / 127.5 - 1, 4)[:, None]
    assert d.source == f"text:{tmp_path}"
    assert d.train_x.shape == (12, 1, 16, 16) and d.train_x.dtype == np.float64
    assert d.train_y.dtype == np.int64
    np.testing.assert_array_equal(d.train_x, expected)
    np.testing.assert_array_equal(d.test_y, labels)


def test_parquet_layout_scales_pixels(tmp_path):
    pixels, labels = tiny_pixels(12, seed=2)
    write_parquet(tmp_path, pixels, labels)
    d = load_usps(tmp_path, expect_counts=False)
    assert d.source == f"parquet:{tmp_path / 'data'}"
    np.testing.assert_array_equal(d.train_x, pixels[:, None] / 127.5 - 1)
    np.testing.assert_array_equal(d.train_y, labels)
    assert d.test_x.min() >= -1 and d.test_x.max() <= 1


def test_parquet_files_directly_in_folder(tmp_path):
    pixels, labels = tiny_pixels(4, seed=3)
    write_parquet(tmp_path, pixels, labels)
    d = load_usps(tmp_path / "data", expect_counts=False)
    assert d.source == f"parquet:{tmp_path / 'data'}"


def test_text_preferred_when_both_exist_unless_asked(tmp_path):
    pixels, labels = tiny_pixels(5, seed=4)
    write_text(tmp_path, pixels, labels)
    write_parquet(tmp_path, pixels, labels)
    assert load_usps(tmp_path, expect_counts=False).source.startswith("text:")
    assert load_usps(tmp_path, prefer="parquet", expect_counts=False).source.startswith(
        "parquet:"
    )
    with pytest.raises(ValueError, match="prefer"):
        load_usps(tmp_path, prefer="png")


def test_counts_checked_by_default(tmp_path):
    write_text(tmp_path, *tiny_pixels(3, seed=5))
    with pytest.raises(DataError, match=r"zip\.train\.gz: expected 7291 digits, found 3"):
        load_usps(tmp_path)


def test_env_var_names_the_folder(tmp_path, monkeypatch):
    write_text(tmp_path / "mine", *tiny_pixels(3, seed=6))
    monkeypatch.setenv("USPS_DATA", str(tmp_path / "mine"))
    assert load_usps(expect_counts=False).source == f"text:{tmp_path / 'mine'}"
    monkeypatch.setenv("USPS_DATA", str(tmp_path / "absent"))
    with pytest.raises(DataError, match=r"absent \(from \$USPS_DATA\): no such folder"):
        load_usps()


def test_default_location_relative_to_cwd(no_defaults):
    write_text(no_defaults / "cwd" / "data" / "usps", *tiny_pixels(3, seed=7))
    d = load_usps(expect_counts=False)
    assert d.source == f"text:{(no_defaults / 'cwd' / 'data' / 'usps').resolve()}"


# ---------------------------------------------------------------- malformed files


def test_corrupt_gzip_names_file(tmp_path):
    write_text(tmp_path, *tiny_pixels(3, seed=8))
    (tmp_path / "zip.train.gz").write_bytes(b"this is not gzip at all" * 10)
    with pytest.raises(DataError, match=r"zip\.train\.gz: not a readable gzip file"):
        load_usps(tmp_path, expect_counts=False)


def test_truncated_gzip_names_file(tmp_path):
    write_text(tmp_path, *tiny_pixels(30, seed=9))
    path = tmp_path / "zip.test.gz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"zip\.test\.gz: not a readable gzip file"):
        load_usps(tmp_path, expect_counts=False)


def test_truncated_last_line(tmp_path):
    lines = text_lines(*tiny_pixels(4, seed=10))
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    write_text(tmp_path, None, None, lines=lines)
    with pytest.raises(DataError, match=r"zip\.train\.gz, line 4: expected 257 .*truncated"):
        load_usps(tmp_path, expect_counts=False)


@pytest.mark.parametrize("change", [" 0.5000", ""])
def test_wrong_number_of_values_names_line(tmp_path, change):
    lines = text_lines(*tiny_pixels(5, seed=11))
    lines[2] = lines[2] + change if change else lines[2].rsplit(" ", 1)[0]
    write_text(tmp_path, None, None, lines=lines)
    found = 258 if change else 256
    with pytest.raises(DataError, match=rf"zip\.train\.gz, line 3: .* found {found}"):
        load_usps(tmp_path, expect_counts=False)


def test_non_numeric_value_names_line(tmp_path):
    lines = text_lines(*tiny_pixels(3, seed=12))
    lines[1] = lines[1].replace(" ", " abc ", 1)[: -len(" 0.0000")]
    lines[1] = " ".join(lines[1].split()[:257])
    write_text(tmp_path, None, None, lines=lines)
    with pytest.raises(DataError, match=r"line 2, value 2: expected a number, got 'abc'"):
        load_usps(tmp_path, expect_counts=False)


@pytest.mark.parametrize(
    "position, token, message",
    [
        (0, "10.0000", r"labels must be 0\.\.9; digit 1 \(counting from 0\) has label 10"),
        (0, "2.5000", r"digit 1 \(counting from 0\) has label 2\.5; expected a whole number"),
        (7, "1.5000", r"values must lie in \[-1, 1\]; digit 1 \(counting from 0\) has 1\.5"),
        (7, "nan", r"digit 1 \(counting from 0\) holds NaN"),
    ],
)
def test_bad_values_in_text(tmp_path, position, token, message):
    lines = text_lines(*tiny_pixels(3, seed=13))
    tokens = lines[1].split()
    tokens[position] = token
    lines[1] = " ".join(tokens)
    write_text(tmp_path, None, None, lines=lines)
    with pytest.raises(DataError, match=r"zip\.train\.gz: " + message):
        load_usps(tmp_path, expect_counts=False)


def test_bad_png_bytes_names_file_and_row(tmp_path):
    pixels, labels = tiny_pixels(4, seed=14)
    blobs = [png_bytes(p) for p in pixels]
    blobs[2] = blobs[2][:30]
    write_parquet_file(tmp_path / "train-00000-of-00001.parquet", blobs, labels)
    with pytest.raises(DataError, match=r"train-00000-of-00001\.parquet, row 2: .*not a readable"):
        data.read_parquet(tmp_path / "train-00000-of-00001.parquet")


@pytest.mark.parametrize("shape", [(8, 8), (16, 16, 3)])
def test_png_of_wrong_size_or_mode(tmp_path, shape):
    blobs = [png_bytes(np.zeros(shape, dtype=np.uint8))]
    write_parquet_file(tmp_path / "x.parquet", blobs, [1])
    with pytest.raises(DataError, match=r"x\.parquet, row 0: expected a 16 x 16 grey-level"):
        data.read_parquet(tmp_path / "x.parquet")


def test_wrong_parquet_columns(tmp_path):
    pixels, labels = tiny_pixels(2, seed=15)
    path = tmp_path / "x.parquet"
    write_parquet_file(path, [png_bytes(p) for p in pixels], labels, names=("img", "label"))
    with pytest.raises(DataError, match=r"x\.parquet: expected columns 'image' .* found img"):
        data.read_parquet(path)


def test_corrupt_parquet_names_file(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(DataError, match=r"x\.parquet: not a readable parquet file"):
        data.read_parquet(path)


# ---------------------------------------------------------------- nothing found; the hub


def test_missing_folder_lists_what_was_tried(tmp_path):
    with pytest.raises(DataError) as info:
        load_usps(tmp_path / "nope")
    text = str(info.value)
    assert "\n" not in text
    assert f"{tmp_path / 'nope'} (given as argument): no such folder" in text
    assert "hub flwrlabs/usps: not tried, because a folder was named" in text


def test_empty_folder_says_which_files_are_expected(tmp_path):
    (tmp_path / "zip.train.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"holds neither .* \(only one of zip\.train\.gz"):
        load_usps(tmp_path)


def test_hub_download_reads_parquet(no_defaults, monkeypatch):
    pixels, labels = tiny_pixels(6, seed=16)
    write_parquet(no_defaults / "cache", pixels, labels)
    calls = fake_hub(monkeypatch, lambda name: str(no_defaults / "cache" / name))
    d = load_usps(expect_counts=False)
    assert d.source == "hub:flwrlabs/usps"
    np.testing.assert_array_equal(d.test_x, pixels[:, None] / 127.5 - 1)
    assert [c["filename"] for c in calls] == [
        "data/train-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
    ]
    assert all(c["repo_id"] == "flwrlabs/usps" and c["repo_type"] == "dataset" for c in calls)


def assert_one_paragraph_of_places(text: str, tmp_path: Path) -> None:
    assert "\n" not in text
    for place in data.default_locations():
        assert f"{place} (default): no such folder" in text
    assert len(data.default_locations()) == 4
    assert str(tmp_path) in text


def test_hub_missing_library_gives_one_paragraph(no_defaults, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import now raises ImportError
    with pytest.raises(DataError) as info:
        load_usps()
    text = str(info.value)
    assert_one_paragraph_of_places(text, no_defaults)
    assert "(5) hub flwrlabs/usps: huggingface_hub is not installed" in text


def test_hub_download_failure_gives_one_paragraph(no_defaults, monkeypatch):
    def offline(name):
        raise OSError(f"network unreachable for {name}")

    fake_hub(monkeypatch, offline)
    with pytest.raises(DataError) as info:
        load_usps()
    text = str(info.value)
    assert_one_paragraph_of_places(text, no_defaults)
    assert "download failed (OSError: network unreachable for data/train-" in text


def test_hub_not_tried_when_disallowed(no_defaults, monkeypatch):
    calls = fake_hub(monkeypatch, lambda name: pytest.fail("download must not be called"))
    with pytest.raises(DataError, match=r"hub flwrlabs/usps: not tried \(allow_hub=False\)"):
        load_usps(allow_hub=False)
    assert calls == []


def test_hub_file_corrupt_is_reported_not_hidden(no_defaults, monkeypatch):
    bad = no_defaults / "bad.parquet"
    bad.write_bytes(b"garbage")
    fake_hub(monkeypatch, lambda name: str(bad))
    with pytest.raises(DataError, match=r"bad\.parquet: not a readable parquet file"):
        load_usps()


# ---------------------------------------------------------------- checksums


def test_verify_checksums_detects_change_and_absence(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"alpha")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"beta")
    sums = [f"{hashlib.sha256(c).hexdigest()}  {n}" for n, c in
            [("a.bin", b"alpha"), ("sub/b.bin", b"beta"), ("gone.bin", b"")]]
    (tmp_path / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    assert data.verify_checksums(tmp_path) == {
        tmp_path / "a.bin": True, tmp_path / "sub/b.bin": True, tmp_path / "gone.bin": False,
    }
    (tmp_path / "a.bin").write_bytes(b"alphA")
    assert data.verify_checksums(tmp_path)[tmp_path / "a.bin"] is False


def test_verify_checksums_bad_list(tmp_path):
    with pytest.raises(DataError, match="SHA256SUMS: cannot read"):
        data.verify_checksums(tmp_path)
    (tmp_path / "SHA256SUMS").write_text("xyz  a.bin\n")
    with pytest.raises(DataError, match=r"SHA256SUMS, line 1: expected '<64 hex digits>"):
        data.verify_checksums(tmp_path)


# ---------------------------------------------------------------- synthetic digits


def test_synthetic_batch_shapes_range_determinism():
    x, y = data.synthetic_batch(300, seed=3)
    assert x.shape == (300, 1, 16, 16) and x.dtype == np.float64
    assert y.shape == (300,) and y.dtype == np.int64
    assert x.min() >= -1 and x.max() <= 1
    assert set(y.tolist()) == set(range(10))
    x2, y2 = data.synthetic_batch(300, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, data.synthetic_batch(300, seed=4)[0])
    ink = (x > 0).mean()
    assert 0.1 < ink < 0.45, f"ink fraction {ink:.2f}; real USPS digits have about 0.26"
    assert data.synthetic_batch(0, seed=0)[0].shape == (0, 1, 16, 16)


def test_synthetic_classes_are_distinguishable():
    x, y = data.synthetic_batch(500, seed=0)
    means = np.stack([x[y == k].reshape(-1, 256).mean(0) for k in range(10)])
    xt, yt = data.synthetic_batch(500, seed=1)
    dist = ((xt.reshape(-1, 1, 256) - means[None]) ** 2).sum(-1)
    accuracy = (dist.argmin(1) == yt).mean()
    assert accuracy > 0.8, f"nearest class mean gets {accuracy:.2f} on fresh synthetic digits"


# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def loaded(usps_dir):
    """Both layouts of the real digits, each with its measured load time in seconds."""
    import pandas  # noqa: F401  (imports excluded from the timings)

    out = {}
    for kind in ("text", "parquet"):
        start = time.perf_counter()
        out[kind] = load_usps(usps_dir, prefer=kind, allow_hub=False)
        out[kind + "_seconds"] = time.perf_counter() - start
    return out


@pytest.mark.data
def test_real_checksums_match(usps_dir):
    result = data.verify_checksums(usps_dir)
    assert len(result) == 4 and all(result.values()), result


@pytest.mark.data
@pytest.mark.parametrize("kind", ["text", "parquet"])
def test_real_shapes_and_class_counts(loaded, usps_dir, kind):
    d = loaded[kind]
    assert d.source.startswith(kind + ":")
    assert d.train_x.shape == (7291, 1, 16, 16) and d.test_x.shape == (2007, 1, 16, 16)
    assert d.train_x.dtype == np.float64 and d.train_y.dtype == np.int64
    assert np.bincount(d.train_y, minlength=10).tolist() == README_COUNTS["train"]
    assert np.bincount(d.test_y, minlength=10).tolist() == README_COUNTS["test"]


@pytest.mark.data
def test_real_layouts_agree(loaded):
    text, parquet = loaded["text"], loaded["parquet"]
    for split in ("train", "test"):
        np.testing.assert_array_equal(getattr(text, f"{split}_y"), getattr(parquet, f"{split}_y"))
        diff = getattr(parquet, f"{split}_x") - getattr(text, f"{split}_x")
        assert np.abs(diff).max() <= LAYOUT_TOL
        # Truncation in the PNG conversion means parquet values never exceed the text ones.
        assert diff.max() <= 1e-9


@pytest.mark.data
def test_real_hub_path_via_stand_in(usps_dir, loaded, no_defaults, monkeypatch):
    calls = fake_hub(monkeypatch, lambda name: str(usps_dir / name))
    d = load_usps()
    assert d.source == "hub:flwrlabs/usps" and len(calls) == 2
    np.testing.assert_array_equal(d.train_x, loaded["parquet"].train_x)
    np.testing.assert_array_equal(d.test_y, loaded["parquet"].test_y)


@pytest.mark.data
def test_real_folder_among_defaults(usps_dir):
    if usps_dir.resolve() != (data.REPO_ROOT / "../shared/data/usps").resolve():
        pytest.skip("data found through $USPS_DATA, not at the default shared location")
    assert usps_dir.resolve() in data.default_locations()
    layouts, _ = data._layouts(usps_dir)
    assert set(layouts) == {"text", "parquet"}
