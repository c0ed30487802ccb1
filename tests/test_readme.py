"""What the README states about the harness, checked against the code that does it."""

from __future__ import annotations

import re
from pathlib import Path

from harness.checks.tolerance import POLICY

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_tolerance_table_is_the_policy():
    section = README[README.index("## Tolerance policy"):README.index("## Layout")]
    rows = re.findall(r"^\| (twin / reference|finite differences[^|]*) \| (float\d\d) \| "
                      r"([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", section, re.MULTILINE)
    assert len(rows) == 4, rows
    for against, dtype, *numbers in rows:
        key = ("twin" if against.startswith("twin") else "finite_diff", dtype)
        t = POLICY[key]
        assert [float(v) for v in numbers] == [t.rtol, t.floor, t.tiny, t.signal], key


def test_training_summary_is_what_its_json_gives(tmp_path):
    """reports/train/README.md is generated from the committed JSON files: a hand edit, or a
    change to the generator without regenerating, shows here."""
    import shutil

    from harness.train.report import write_summary

    committed = Path(__file__).parents[1] / "reports" / "train"
    for name in ("runs.json", "seeds.json", "lockstep.json", "bench.json"):
        shutil.copy(committed / name, tmp_path / name)
    fresh = write_summary(tmp_path).read_text()
    assert fresh == (committed / "README.md").read_text(), (
        "reports/train/README.md is stale: regenerate it with "
        "`python -c \"from pathlib import Path; from harness.train.report import "
        "write_summary; write_summary(Path('reports/train'))\"`")
