"""`--format json`: the report document (schema: docs/skew-report.schema.json)."""

from __future__ import annotations

import json

from fpipe.skew.report import SkewReport


def render_json(report: SkewReport) -> str:
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
