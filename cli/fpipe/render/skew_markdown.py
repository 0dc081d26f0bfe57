"""`--format markdown`: fits a CI job summary or a pull-request comment."""

from __future__ import annotations

from fpipe.render.skew_common import STATUS_TEXT, cause, checks_summary, headline, num, pct, since
from fpipe.skew.report import SkewReport

ICON = {"pass": "✅", "warn": "⚠️", "fail": "❌", "inconclusive": "❔"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: SkewReport) -> str:
    out = [f"## {ICON[report.status]} Train/serve skew: {STATUS_TEXT[report.status]}", "", headline(report), ""]
    out += [
        "| feature | status | match rate | mismatches | when | PSI | null-rate Δ | likely cause |",
        "|---|---|---:|---:|---|---:|---:|---|",
    ]
    for f in report.features:
        out.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    f"`{f.name}`",
                    f"{ICON[f.status]} {f.status}",
                    pct(f.row.match_rate),
                    f"{f.row.mismatches:,}",
                    since(f),
                    num(f.distribution.psi, 3),
                    pct(f.distribution.null_rate_change, 1),
                    cause(f),
                )
            )
            + " |"
        )
    failing = [f for f in report.features if f.status in ("fail", "warn")]
    if failing:
        out += ["", "### Findings", ""]
        for f in failing:
            out.append(f"- **`{f.name}`** ({f.status}): {checks_summary(f)}")
            if f.diagnosis is not None:
                out.append(f"  - cause: {f.diagnosis.summary} — {f.diagnosis.evidence}")
            for w in f.row.worst_rows[:3]:
                ident = ", ".join(f"{k}={v}" for k, v in w.items() if k not in ("served", "offline"))
                out.append(f"  - `{ident}`: served `{w['served']!r}`, offline `{w['offline']!r}`")
    if report.notes:
        out += ["", *[f"> {n}" for n in report.notes]]
    return "\n".join(out) + "\n"
