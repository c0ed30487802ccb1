"""`verify` as a user runs it: exit codes, the JSON schema, bad input."""

from __future__ import annotations

import json

import pytest

from harness.cli import main

LAYERS = {"H1", "H2", "H3", "out"}
QUANTITIES = {"activation", "weight_grad", "bias_grad", "input_grad"}


@pytest.mark.data
def test_verify_passes_on_real_digits_and_writes_json(usps_dir, tmp_path, capsys):
    out = tmp_path / "out.json"
    md = tmp_path / "out.md"
    rc = main(["--data", str(usps_dir), "--samples", "1", "--json", str(out),
               "--markdown", str(md), "--no-progress"])
    assert rc == 0, capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["verdict"] == "pass" and d["candidate"] == "reference"
    assert d["data"]["samples"] == 1 and d["data"]["source"].startswith(("text:", "parquet:"))
    grid = {(c["layer"], c["quantity"], c["against"]) for c in d["checks"]
            if c["layer"] in LAYERS}
    for L in LAYERS:
        for q in QUANTITIES:
            assert (L, q, "twin") in grid
            if q != "activation":
                assert (L, q, "finite_diff") in grid
    for c in d["checks"]:
        assert c["ok"] is True
        if c["layer"] in LAYERS:
            assert isinstance(c["max_abs"], float) and isinstance(c["max_rel"], float)
    assert "| H1 | weight_grad |" in md.read_text()


def test_verify_fails_with_exit_1_when_the_twin_disagrees(tmp_path, monkeypatch, no_data):
    """Break the twin's activation slope: every twin check must fail, exit code 1."""
    import reference.torch_twin as tt

    real = tt.TorchNet

    def broken(spec, params, dtype=None):
        return real(spec.replace(act_slope=spec.act_slope * 1.001), params, dtype=dtype)

    monkeypatch.setattr(tt, "TorchNet", broken)
    out = tmp_path / "o.json"
    rc = main(["--samples", "1", "--json", str(out), "--no-progress"])
    assert rc == 1
    d = json.loads(out.read_text())
    assert d["verdict"] == "fail"
    failed = {(c["layer"], c["quantity"]) for c in d["checks"] if not c["ok"]}
    assert ("H1", "activation") in failed
    ref_fd = [c for c in d["checks"] if c["against"] == "finite_diff"
              and c["subject"] == "reference"]
    assert ref_fd and all(c["ok"] for c in ref_fd)


def test_no_data_falls_back_to_a_synthetic_batch_and_says_so(tmp_path, no_data, capsys):
    out = tmp_path / "o.json"
    assert main(["--samples", "1", "--json", str(out), "--no-progress"]) == 0
    d = json.loads(out.read_text())
    assert d["data"]["source"] == "synthetic"
    assert "synthetic" in capsys.readouterr().out


def test_missing_data_folder_is_exit_2_with_a_clear_message(tmp_path, capsys):
    rc = main(["--data", str(tmp_path / "nope"), "--no-progress"])
    assert rc == 2
    assert "nope" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--samples", "0"], ["--dtype", "float16"],
                                  ["--preset", "lenet5"]])
def test_bad_usage_is_exit_2(argv, no_data):
    try:
        rc = main(argv + ["--no-progress"])
    except SystemExit as e:  # argparse's own usage errors
        rc = e.code
    assert rc == 2


def test_bad_params_file_is_exit_2_naming_it(tmp_path, no_data, capsys):
    bad = tmp_path / "weights.npz"
    bad.write_text("garbage")
    assert main(["--params", str(bad), "--no-progress"]) == 2
    assert "weights.npz" in capsys.readouterr().out


def test_unwritable_report_path_is_named_and_console_report_kept(tmp_path, no_data, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    good = tmp_path / "good.md"
    rc = main(["--samples", "1", "--json", str(blocker / "o.json"), "--markdown", str(good),
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 2 and "o.json" in out
    assert good.exists(), "the other report must still be written"
