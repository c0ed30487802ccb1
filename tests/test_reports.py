"""JUnit XML, the self-contained HTML report and the pytest plugin, on real and faulty runs."""

from __future__ import annotations

import argparse
import base64
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness.checks.compare import FAIL, NOT_RUN, PASS, compare, not_run
from harness.checks.tolerance import tolerance_for
from harness.report.html import to_html
from harness.report.junit import case_name, to_junit
from harness.report.model import Report
from harness.report.text import verdict_line

ROOT = Path(__file__).parents[1]
IMG = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ref_report() -> Report:
    """A real run: the reference against its twin and finite differences, 1 pattern."""
    from harness.checks.verify_reference import run_reference_checks
    from harness.data import synthetic_batch
    from reference.params import init_params
    from reference.spec import preset

    spec = preset("paper")
    x, y = synthetic_batch(1, seed=0)
    r = Report("reference", "synthetic", 1, "float64", 0, "paper")
    r.checks = run_reference_checks(spec, init_params(spec, 0), x, y)
    return r


def faulty_report(layer: str = "H1") -> Report:
    """Checks built by hand from arrays that differ: 2 fail, 1 passes, 1 did not run."""
    rng = np.random.default_rng(0)
    tol = tolerance_for("reference", "float64")
    g = rng.normal(size=(12, 1, 5, 5))
    bad = g.copy()
    bad[3] *= 1.5
    b = rng.normal(size=(12, 8, 8))
    r = Report("faulty", "synthetic", 1, "float64", 0, "paper")
    r.checks = [
        compare(bad, g, tol, layer, "weight_grad", "reference", subject="candidate",
                mode="isolated"),
        compare(b, b, tol, layer, "bias_grad", "reference", subject="candidate",
                mode="isolated"),
        compare(b + 1e-3, b, tol, "H2", "activation", "reference", subject="candidate",
                mode="chain"),
        not_run("out", "input_grad", "reference", "the candidate's layer returned no dx",
                subject="candidate", mode="isolated"),
    ]
    r.sections["h1_kernel_grad_diff"] = (bad - g)[:, 0].tolist()
    return r


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml.encode("utf-8"))


# ------------------------------------------------------------------- JUnit


def test_junit_has_one_case_per_check_of_a_real_run(ref_report):
    root = parse(to_junit(ref_report))
    cases = root.findall(".//testcase")
    assert len(cases) == len(ref_report.checks) > 30
    suite = root.find("testsuite")
    assert suite.get("tests") == str(len(ref_report.checks))
    assert suite.get("failures") == "0" and suite.get("skipped") == "0"
    got = sorted((c.get("classname"), c.get("name")) for c in cases)
    want = sorted((f"verify.{c.layer}", case_name(c)) for c in ref_report.checks)
    assert got == want
    assert ("verify.H1", "weight_grad reference vs finite_diff [chain]") in got


def test_junit_counts_failures_and_skips_with_verdict_lines():
    r = faulty_report()
    root = parse(to_junit(r))
    suite = root.find("testsuite")
    n = r.counts()
    assert (n[FAIL], n[NOT_RUN], n[PASS]) == (2, 1, 1)
    assert suite.get("tests") == "4"
    assert suite.get("failures") == str(n[FAIL]) and suite.get("skipped") == str(n[NOT_RUN])
    failures = {tc.get("classname") + " " + tc.get("name"): tc.find("failure")
                for tc in root.iter("testcase") if tc.find("failure") is not None}
    w = failures["verify.H1 weight_grad candidate vs reference [isolated]"]
    lines = verdict_line(r.checks[0])
    assert w.get("message") == lines[0] and w.text == "\n".join(lines)
    assert "failing maps/rows: 3" in w.text
    (sk,) = [tc.find("skipped") for tc in root.iter("testcase") if tc.find("skipped") is not None]
    assert sk.get("message") == "the candidate's layer returned no dx"


def test_junit_appends_extra_gate_cases():
    r = faulty_report()
    extra = [("training mse", False, "moved by 3.0% (tolerance 1%)"), ("selftest", True, ""),
             ("twin on GPU", None, "no GPU")]
    root = parse(to_junit(r, extra_cases=extra))
    suite = root.find("testsuite")
    assert suite.get("tests") == "7"
    assert suite.get("failures") == "3" and suite.get("skipped") == "2"
    gate = [tc for tc in root.iter("testcase") if tc.get("classname") == "verify.gate"]
    assert [tc.get("name") for tc in gate] == ["training mse", "selftest", "twin on GPU"]
    assert gate[0].find("failure").get("message") == "moved by 3.0% (tolerance 1%)"


def test_junit_survives_control_characters_and_markup():
    r = faulty_report(layer="H1<&>\"")
    r.checks[3].reason = "raised ValueError('\x00\x1b[31mboom')"
    root = parse(to_junit(r))  # would raise ParseError on a raw \x00
    names = {tc.get("classname") for tc in root.iter("testcase")}
    assert 'verify.H1<&>"' in names


# ------------------------------------------------------------------- HTML


class Tags(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def assert_self_contained(html: str) -> None:
    """One document; every URL-bearing attribute is a data: URI; no scripts or fetches."""
    assert html.count("<html") == 1 and html.rstrip().endswith("</html>")
    tags = Tags(html).tags
    urls = [v for _, a in tags for k, v in a.items()
            if k in ("src", "href", "action", "poster", "srcset", "data", "formaction")]
    assert all(v.startswith("data:image/png;base64,") for v in urls), [v[:40] for v in urls]
    assert {t for t, _ in tags}.isdisjoint({"script", "link", "iframe", "object", "embed"})
    assert not any(k.startswith("on") for _, a in tags for k in a)
    # the regex check of the brief, on the markup only (escaped text cannot hold a `"`)
    refs = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', html, re.I)
    assert refs and all(v.startswith("data:") for v in refs)
    assert not re.search(r"@import|url\(", html, re.I)


def images(html: str) -> list[bytes]:
    out = [base64.b64decode(m) for m in IMG.findall(html)]
    assert all(b.startswith(PNG_MAGIC) for b in out)
    return out


def test_html_of_a_real_run_is_one_self_contained_file(ref_report):
    html = to_html(ref_report)
    assert_self_contained(html)
    assert len(images(html)) == 1  # the error chart; no heatmaps or training data given
    # every check is a green cell: 40 in the grid, the parameter checksum in its own table
    assert "<table>" in html and html.count('<td class="pass">') == len(ref_report.checks)
    assert "Checks by layer and quantity" in html and 'class="verdict v-pass"' in html


def test_html_of_a_faulty_run_has_heatmaps_sections_and_training():
    r = faulty_report()
    r.sections["localization"] = {"origins": [], "first_origin_forward": "H1 weight_grad",
                                  "first_origin_backward": "H1 weight_grad", "spread": []}
    r.sections["conformance"] = [
        {"choice": "loss", "paper": "MSE", "candidate": "cross-entropy", "same": False}]
    recs = [{"pass": p, "split": s, "mse": 0.1 / p, "error_pct": 9.0 / p, "misses": 1,
             "n": 10} for p in (1, 2, 3) for s in ("train", "test")]
    r.sections["training"] = {"records": recs, "rejection_curve": {
        "rejected_pct": [0.0, 10.0, 20.0], "error_pct": [5.0, 2.0, 0.5]}}
    html = to_html(r)
    assert_self_contained(html)
    assert len(images(html)) == 4  # error chart, heatmaps, learning curves, rejection
    assert 'class="verdict v-fail"' in html and html.count('<td class="fail">') == 2
    assert '<td class="not_run">NOT RUN</td>' in html
    assert "H1 kernel-gradient difference" in html and "cross-entropy" in html
    assert '<tr class="differs">' in html


def test_html_names_a_bad_heatmap_section_instead_of_crashing():
    r = faulty_report()
    r.sections["h1_kernel_grad_diff"] = [[1.0, 2.0]]
    html = to_html(r)
    assert "not drawn" in html and "expected (12, 5, 5)" in html
    assert len(images(html)) == 1


def test_html_escapes_report_text():
    evil = '<script>alert("x")</script>$\\frac{'
    r = faulty_report(layer=evil)
    r.candidate = evil
    r.notes.append('<img src="http://example.com/x.png">')
    html = to_html(r)
    assert "<script>" not in html and '<img src="http://' not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert_self_contained(html)
    assert len(images(html)) == 2  # the chart draws a `$` label as text, not mathtext


def test_emit_writes_junit_and_html(tmp_path):
    from rich.console import Console

    from harness.cli import emit

    args = argparse.Namespace(json=None, markdown=None, verbose=False,
                              html=str(tmp_path / "r.html"), junit=str(tmp_path / "r.xml"))
    emit(faulty_report(), args, Console(file=open(tmp_path / "console.txt", "w")))
    assert parse((tmp_path / "r.xml").read_text()).find("testsuite").get("tests") == "4"
    assert_self_contained((tmp_path / "r.html").read_text())


# ------------------------------------------------------------------- pytest plugin


def test_plugin_reports_a_faulty_candidate_object_and_fails_with_verdict_lines(ref_report):
    from candidates.reference_candidate import reference_candidate
    from harness.pytest_plugin import assert_verified, run_verify

    cand = reference_candidate()
    h1 = cand.layers[0]
    backward = h1.backward

    def wrong_backward(x, dy):  # the weight gradient of kernel 5 is doubled
        dx, g = backward(x, dy)
        w = np.array(g["w"], copy=True)
        w[5] *= 2.0
        return dx, {"w": w, "b": g["b"]}

    h1.backward = wrong_backward
    report = run_verify(cand, samples=1)
    bad = {(c.layer, c.quantity, c.mode) for c in report.failed}
    assert ("H1", "weight_grad", "isolated") in bad
    assert all(c.layer == "H1" and c.quantity == "weight_grad" for c in report.failed)
    with pytest.raises(pytest.fail.Exception) as e:
        assert_verified(report)
    assert "FAIL    H1   weight_grad" in str(e.value)
    assert "failing maps/rows: 5" in str(e.value)
    assert_verified(ref_report)  # every check passed: no failure


def test_plugin_loads_with_dash_p(tmp_path):
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        from harness.checks.compare import compare
        from harness.pytest_plugin import assert_verified
        from harness.report.model import Report
        from harness.checks.tolerance import tolerance_for

        def test_uses_fixture(verify_candidate):
            assert callable(verify_candidate)

        def test_fails_with_lines():
            r = Report("mine", "synthetic", 1, "float64", 0, "paper")
            r.checks = [compare([1.0, 2.0], [1.0, 3.0], tolerance_for("reference", "float64"),
                                "H3", "bias_grad", "reference", subject="candidate")]
            assert_verified(r)
    """))
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin",
                        "-q", "-p", "no:cacheprovider", str(tmp_path / "test_user.py")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "1 failed, 1 passed" in out
    assert "FAIL    H3   bias_grad" in out and "1 of 2 entries outside tolerance" in out


# ------------------------------------------------------------------- report structure


class Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts, keyed by the <h2> above it."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.h2, self._in_h2, self._cell = "", False, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "h2":
            self._in_h2, self.h2 = True, ""
        elif tag == "table":
            self.tables.append((self.h2, []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._in_h2:
            self.h2 += data
        if self._cell is not None:
            self._cell += data

    def under(self, heading: str) -> list[list[str]]:
        return next(rows for h2, rows in self.tables if h2.startswith(heading))


@pytest.fixture(scope="module")
def loss_x10_report() -> Report:
    """A real candidate run (the reference behind user wrappers) whose loss gradient is 10x
    too large: one origin, loss loss_grad, with the hint "x10"."""
    sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "candidates"))
    try:
        from _wrapper import wrap
    finally:
        sys.path.pop(0)
    from harness.pytest_plugin import run_verify

    cand = wrap(0, "loss-x10")
    loss_grad = cand.loss_grad
    cand.loss_grad = lambda y, labels: 10.0 * np.asarray(loss_grad(y, labels))
    return run_verify(cand, samples=1)


def test_html_faults_table_has_a_likely_cause_column_with_the_hint(loss_x10_report):
    origins = loss_x10_report.sections["localization"]["origins"]
    assert [(o["layer"], o["quantity"]) for o in origins] == [("loss", "loss_grad")]
    html = to_html(loss_x10_report)
    head, *rows = Tables(html).under("Faults")
    assert "likely cause" in head
    row = dict(zip(head, rows[0]))
    assert (row["layer"], row["quantity"]) == ("loss", "loss_grad")
    assert row["likely cause"] == "off by one constant factor everywhere: x10"


def test_html_faults_table_shows_sign_and_flip_hints_and_reasons():
    from harness.checks.localize import summarize

    rng = np.random.default_rng(1)
    tol = tolerance_for("reference", "float64")
    k = rng.normal(size=(12, 1, 5, 5))
    b = rng.normal(size=(12, 8, 8))
    r = Report("hints", "synthetic", 1, "float64", 0, "paper")
    r.checks = [
        compare(k[..., ::-1, ::-1], k, tol, "H1", "weight_grad", "reference",
                subject="candidate", mode="isolated"),
        compare(-b, b, tol, "H1", "bias_grad", "reference", subject="candidate",
                mode="isolated"),
    ]
    r.sections["localization"] = summarize(r)
    head, *rows = Tables(to_html(r)).under("Faults")
    cause = {(x[0], x[1]): dict(zip(head, x))["likely cause"] for x in rows}
    assert cause[("H1", "bias_grad")] == "sign flipped everywhere"
    assert "rotated by 180 degrees" in cause[("H1", "weight_grad")]
    assert "reason" not in head  # no origin has one: no empty column
    assert dict(zip(head, rows[0]))["against"] == "ref"  # named as in the check table


def test_html_holds_no_raw_markdown_and_no_repeated_sections(loss_x10_report):
    html = to_html(loss_x10_report)
    assert "**" not in html
    assert not re.search(r"(^|>)\s*- ", html, re.MULTILINE)  # no Markdown list items as text
    assert not re.search(r"\|\s*-{3}", html)  # no Markdown table rule
    # the Markdown sections repeat structured ones: each heading appears once
    for heading in ("Faults", "Spread", "Conformance with the paper"):
        assert html.count(heading) <= 1, heading
    assert "<details><summary>Faults" not in html


def test_html_renders_other_markdown_sections_escaped():
    r = faulty_report()
    r.sections["markdown_sections"] = [
        ("Extra <notes>", ("- first **H1 weight_grad** and `a|b <c>`\n- _two_\n\n"
                           "| a | b |\n|---|---|\n| <x> | **y** |\n\nplain *text*"))]
    html = to_html(r)
    assert_self_contained(html)
    assert "**" not in html and "<h2>Extra &lt;notes&gt;</h2>" in html
    assert "<li>first <strong>H1 weight_grad</strong> and <code>a|b &lt;c&gt;</code></li>" \
        in html
    assert "<li><em>two</em></li>" in html and "<p>plain <em>text</em></p>" in html
    assert "<x>" not in html and "<c>" not in html  # a candidate's text is never markup
    rows = Tables(html).under("Extra")
    assert rows == [["a", "b"], ["<x>", "y"]]


def _verdicts(report):
    """The console's rule: FAIL if any cell fails, else PASS if any passes, else NOT RUN."""
    from harness.report.text import grid

    out = {}
    for layer, quantity, cells in grid(report)[1]:
        st = {c.status for c in cells.values()}
        out[(layer, quantity)] = ("FAIL" if FAIL in st else "PASS" if PASS in st
                                  else "NOT RUN")
    return out


def test_markdown_check_table_has_a_verdict_column():
    from harness.report.files import to_markdown

    r = faulty_report()
    md = to_markdown(r).splitlines()
    i = next(k for k, ln in enumerate(md) if ln.startswith("| layer | quantity |"))
    head = [c.strip() for c in md[i].strip("|").split("|")]
    assert head[-1] == "verdict"
    assert md[i + 1].count("---") == len(head)
    got = {}
    for ln in md[i + 2:]:
        if not ln.startswith("|"):
            break
        cells = [c.strip() for c in ln.strip("|").split("|")]
        assert len(cells) == len(head), ln
        got[(cells[0], cells[1])] = cells[-1]
    assert got == _verdicts(r)
    assert got[("H1", "weight_grad")] == "FAIL" and got[("H1", "bias_grad")] == "PASS"
    assert got[("out", "input_grad")] == "NOT RUN"
    assert "- data: synthetic, 1 pattern" in md


def test_html_check_table_has_a_verdict_column(ref_report):
    for r in (faulty_report(), ref_report):
        html = to_html(r)
        head, *rows = Tables(html).under("Checks by layer and quantity")
        assert head[-1] == "verdict"
        assert {(x[0], x[1]): x[-1] for x in rows} == _verdicts(r)
    assert "1 pattern;" in html


def _captured_figures(monkeypatch):
    import harness.report.html as h

    figs = []
    monkeypatch.setattr(h, "_png", lambda fig: figs.append(fig) or "<img>")
    return figs


def test_error_chart_legend_covers_no_bar(monkeypatch):
    import harness.report.html as h

    figs = _captured_figures(monkeypatch)
    h._error_chart(faulty_report().sorted_checks())
    (fig,) = figs
    fig.canvas.draw()
    assert all(ax.get_legend() is None for ax in fig.axes)  # no legend inside the axes
    (legend,) = fig.legends
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent()), "legend over a panel"
        assert not box.overlaps(ax.xaxis.get_tightbbox()), "legend over the tick labels"
    assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= fig.bbox.x1
    texts = [t.get_text() for t in legend.get_texts()]
    assert any("rtol" in t for t in texts) and "FAIL" in texts
    h.plt.close(fig)


def test_h1_heatmaps_mark_failing_kernels_of_a_12x5x5_gradient(monkeypatch):
    figs = _captured_figures(monkeypatch)
    rng = np.random.default_rng(0)
    g = rng.normal(size=(12, 5, 5))
    bad = g.copy()
    bad[7] *= 2.0
    r = Report("12x5x5", "synthetic", 1, "float64", 0, "paper")
    r.checks = [compare(bad, g, tolerance_for("self_fd", "float64"), "H1", "weight_grad",
                        "self_fd", subject="candidate", mode="isolated")]
    r.sections["h1_kernel_grad_diff"] = (bad - g).tolist()
    to_html(r)
    heat = figs[1]
    titles = [ax.get_title() for ax in heat.axes[:12]]
    assert [k for k, t in enumerate(titles) if "FAILS" in t] == [7]


def test_markdown_check_table_keeps_its_columns_when_a_cell_holds_a_pipe():
    from harness.report.files import to_markdown

    r = faulty_report(layer="H1|x")
    r.checks[0].reason, r.checks[0].n = "a|b\nc", 0  # the cell shows the reason
    lines = to_markdown(r).splitlines()
    head = next(ln for ln in lines if ln.startswith("| layer |"))
    rows = [ln for ln in lines if ln.startswith("| H1\\|x |")]
    assert len(rows) == 2 and "FAIL (a\\|b c)" in rows[0]
    width = len(re.split(r"(?<!\\)\|", head))
    assert all(len(re.split(r"(?<!\\)\|", ln)) == width for ln in rows), rows
