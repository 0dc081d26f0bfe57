"""`--format junit`: one testcase per feature and check, so CI systems show failures natively.

A failed check is a <failure>; a warning is a <failure> only with `--fail-on warn` (else it passes with
the message in <system-out>); an inconclusive check is <skipped>.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from fpipe.skew.report import SkewReport


def render_junit(report: SkewReport) -> str:
    cases: list[ET.Element] = []
    failures = skipped = 0
    gate = {"fail"} if report.fail_on == "fail" else {"fail", "warn"}
    for f in report.features:
        for c in f.checks:
            case = ET.Element("testcase", classname=f"skew.{f.name}", name=c.name, time="0")
            text = f"{c.message} (value {c.value}, warn {c.warn}, fail {c.fail}, noise floor {c.noise_floor:.6g})"
            if c.status in gate:
                failures += 1
                el = ET.SubElement(case, "failure", message=f"{c.status}: {c.message}", type=c.status)
                body = [text]
                if f.diagnosis is not None and c.level == "row":
                    body.append(f"likely cause: {f.diagnosis.summary}; {f.diagnosis.evidence}")
                el.text = "\n".join(body)
            elif c.status == "inconclusive":
                skipped += 1
                ET.SubElement(case, "skipped", message=f"inconclusive: {c.message}")
            else:
                ET.SubElement(case, "system-out").text = f"{c.status}: {text}"
            cases.append(case)
    suite = ET.Element(
        "testsuite",
        name=f"fpipe skew-report {report.training_set or ''}".strip(),
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time="0",
    )
    suite.extend(cases)
    root = ET.Element("testsuites", name="fpipe", tests=str(len(cases)), failures=str(failures), errors="0")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
