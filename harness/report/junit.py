"""JUnit XML: one <testcase> per check (and per extra named item, e.g. a gate item), so CI
systems list them natively.

    classname  verify.<layer>            (extra items: verify.<group>, default verify.gate)
    name       <quantity> <subject> vs <against> [mode]
    failure    message = the first verdict line; text = every verdict line of the check
    skipped    message = why the check did not run

Nothing here prints or writes; the caller writes the string (harness.report.files).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from harness.checks.compare import FAIL, NOT_RUN, Check
from harness.report.model import Report
from harness.report.text import summary_line, verdict_line

# XML 1.0 cannot carry most control characters, even escaped; a candidate's exception text
# may hold them, so they are replaced before they reach the tree.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# An extra case: (name, ok, message). ok True passes, False fails, None is skipped.
ExtraCase = tuple[str, "bool | None", str]


def _clean(text) -> str:
    return _ILLEGAL.sub("\ufffd", str(text))


def case_name(c: Check) -> str:
    mode = f" [{c.mode}]" if c.mode else ""
    return f"{c.quantity} {c.subject} vs {c.against}{mode}"


def _case(parent: ET.Element, classname: str, name: str, status: str, lines: list[str]):
    tc = ET.SubElement(parent, "testcase", classname=_clean(classname), name=_clean(name),
                       time="0")
    if status == FAIL:
        el = ET.SubElement(tc, "failure", message=_clean(lines[0] if lines else "failed"),
                           type="verify.fail")
        el.text = _clean("\n".join(lines))
    elif status == NOT_RUN:
        ET.SubElement(tc, "skipped", message=_clean(" ".join(lines) or "not run"))
    return tc


def to_junit(report: Report, extra_cases: Iterable[ExtraCase] = (),
             extra_classname: str = "verify.gate", suite_name: str = "verify") -> str:
    """The report (and any extra named cases) as a JUnit XML document."""
    root = ET.Element("testsuites", name=_clean(suite_name))
    suite = ET.SubElement(root, "testsuite", name=_clean(f"{suite_name}: {report.candidate}"))
    props = ET.SubElement(suite, "properties")
    for k, v in (("candidate", report.candidate), ("data", report.data_source),
                 ("samples", report.samples), ("dtype", report.dtype),
                 ("seed", report.seed), ("preset", report.preset),
                 ("verdict", report.verdict)):
        ET.SubElement(props, "property", name=k, value=_clean(v))
    n = failures = skipped = 0
    for c in report.sorted_checks():
        lines = [c.reason or "not run"] if c.status == NOT_RUN else verdict_line(c)
        _case(suite, f"verify.{c.layer}", case_name(c), c.status, lines)
        n += 1
        failures += c.status == FAIL
        skipped += c.status == NOT_RUN
    if report.verdict == FAIL and not failures:
        # every check was NOT RUN: nothing was verified, which is never a pass
        _case(suite, "verify.all", "nothing verified", FAIL,
              ["no check could run; see the skipped cases for why"])
        n += 1
        failures += 1
    for name, ok, message in extra_cases:
        status = NOT_RUN if ok is None else ("pass" if ok else FAIL)
        lines = str(message).splitlines() if message else []
        tc = _case(suite, extra_classname, name, status, lines)
        if status == "pass" and message:
            ET.SubElement(tc, "system-out").text = _clean(message)
        n += 1
        failures += status == FAIL
        skipped += status == NOT_RUN
    for el in (root, suite):
        el.set("tests", str(n))
        el.set("failures", str(failures))
        el.set("errors", "0")
        el.set("skipped", str(skipped))
    out = ET.SubElement(suite, "system-out")
    out.text = _clean("\n".join([summary_line(report)] + [f"note: {m}" for m in report.notes]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"
