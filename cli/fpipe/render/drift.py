"""`fpipe drift` renderers: a Rich table (features x buckets, PSI per cell), JSON, Markdown and HTML
(with an inline SVG line plot of each drifting feature's PSI, noise floor and threshold over time)."""

from __future__ import annotations

import json
from html import escape

from fpipe.skew.drift import DRIFT, EMPTY, FEW, REFERENCE, WARN, BucketDrift, DriftReport, FeatureDrift

MARK = {DRIFT: "!!", WARN: "!", REFERENCE: "ref", EMPTY: "-", FEW: "(few)"}


def _cell(b: BucketDrift) -> str:
    if b.status in (REFERENCE, EMPTY):
        return MARK[b.status]
    value = "n/a" if b.psi is None else f"{b.psi:.3f}"
    return value + (f" {MARK[b.status]}" if b.status in MARK else "")


def _title(r: DriftReport) -> str:
    from fpipe.spec.durations import format_duration

    ref = f"{r.reference[0]:%Y-%m-%d} .. {r.reference[1]:%Y-%m-%d}"
    return f"drift of {r.training_set or 'training set'} every {format_duration(r.every)} (PSI vs reference {ref})"


def _summary(f: FeatureDrift) -> str:
    if f.status == DRIFT and f.drifting_from is not None:
        return f"drifts from {f.drifting_from:%Y-%m-%d}"
    return f.status


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(f: FeatureDrift, psi_fail: float) -> str:
    """One character per bucket: PSI on a scale up to twice the threshold; `·` reference or empty."""
    top = 2 * psi_fail if psi_fail > 0 else 1.0
    chars = []
    for b in f.buckets:
        if b.status in (REFERENCE, EMPTY) or b.psi is None:
            chars.append("·")
        else:
            chars.append(SPARK[min(int(b.psi / top * (len(SPARK) - 1) + 0.5), len(SPARK) - 1)])
    return "".join(chars)


def render_table(r: DriftReport, *, no_color: bool = False) -> None:
    from rich.table import Table

    from fpipe.render.console import make_console

    console = make_console(no_color=no_color)
    t = Table(title=_title(r))
    t.add_column("feature")
    t.add_column("status")
    t.add_column("max PSI", justify="right")
    t.add_column("null rate (first -> last)", justify="right")
    t.add_column(f"PSI per bucket ({r.bucket_starts[0]:%Y-%m-%d} ..)" if r.bucket_starts else "PSI per bucket")
    styles = {DRIFT: "bold red", WARN: "yellow"}
    for f in r.features:
        filled = [b for b in f.buckets if b.rows]
        nulls = f"{filled[0].null_rate:.1%} -> {filled[-1].null_rate:.1%}" if filled else "-"
        status = _summary(f)
        t.add_row(
            f.feature, status, "-" if f.max_psi is None else f"{f.max_psi:.3f}", nulls, sparkline(f, r.thresholds.psi_fail),
            style=None if no_color else styles.get(f.status),
        )
    console.print(t)
    for f in r.drifting:
        first = next((b for b in f.buckets if b.status == DRIFT), None)
        if first is not None:
            console.print(f"{f.feature}: {first.start:%Y-%m-%d}: " + "; ".join(first.reasons), markup=False)
    if r.rows_without_time:
        console.print(f"{r.rows_without_time:,} rows without a time are not in any bucket")
    console.print(f"{len(r.drifting)} of {len(r.features)} features drift" if r.drifting else "no feature drifts")


def render_json(r: DriftReport) -> str:
    return json.dumps(r.to_json(), indent=2) + "\n"


def render_markdown(r: DriftReport) -> str:
    lines = [f"# {_title(r)}", ""]
    head = ["feature", "status", *[f"{b:%Y-%m-%d}" for b in r.bucket_starts]]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for f in r.features:
        lines.append("| " + " | ".join([f.feature, _summary(f), *[_cell(b) for b in f.buckets]]) + " |")
    lines.append("")
    lines.append(f"PSI per bucket against the reference; `!!` drift (over {r.thresholds.psi_fail:g} and the noise floor), `!` warn.")
    for f in r.drifting:
        lines.append("")
        lines.append(f"## {f.feature}")
        for b in f.buckets:
            if b.status in (DRIFT, WARN):
                lines.append(f"- {b.start:%Y-%m-%d} ({b.rows:,} rows): " + "; ".join(b.reasons))
    return "\n".join(lines) + "\n"


def psi_svg(f: FeatureDrift, psi_fail: float, width: int = 520, height: int = 200) -> str:
    """PSI (blue), its noise floor (grey, dashed) and the threshold (orange, dashed) per bucket."""
    pts = [(i, b) for i, b in enumerate(f.buckets) if b.status not in (REFERENCE, EMPTY) and b.psi is not None]
    pad_l, pad_r, pad_t, pad_b = 44, 12, 24, 30
    ymax = max([psi_fail * 1.2, *(b.psi or 0.0 for _, b in pts), *(min(b.psi_floor or 0.0, 10.0) for _, b in pts)])
    n = max(len(f.buckets) - 1, 1)

    def xy(i: int, y: float) -> tuple[float, float]:
        return pad_l + i / n * (width - pad_l - pad_r), pad_t + (1 - min(y, ymax) / ymax) * (height - pad_t - pad_b)

    def line(values: list[tuple[int, float]], color: str, dash: bool = False) -> str:
        p = " ".join("{:.1f},{:.1f}".format(*xy(i, y)) for i, y in values)
        extra = ' stroke-dasharray="4 3"' if dash else ""
        return f'<polyline fill="none" stroke="{color}" stroke-width="1.8"{extra} points="{p}"/>'

    font = 'font-family="Helvetica,Arial,sans-serif" font-size="11"'
    x0, y0 = xy(0, 0)
    x1, y1 = xy(n, ymax)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.0f}" y="15" text-anchor="middle" {font} font-weight="bold">{escape(f.feature)}: PSI per bucket</text>',
        f'<rect x="{x0:.1f}" y="{y1:.1f}" width="{x1 - x0:.1f}" height="{y0 - y1:.1f}" fill="none" stroke="#374151"/>',
        f'<text x="{x0 - 4:.1f}" y="{y0:.1f}" text-anchor="end" {font}>0</text>',
        f'<text x="{x0 - 4:.1f}" y="{y1 + 8:.1f}" text-anchor="end" {font}>{ymax:.2g}</text>',
        f'<text x="{x0:.1f}" y="{height - 10}" {font}>{f.buckets[0].start:%Y-%m-%d}</text>',
        f'<text x="{x1:.1f}" y="{height - 10}" text-anchor="end" {font}>{f.buckets[-1].start:%Y-%m-%d}</text>',
        line([(0, psi_fail), (n, psi_fail)], "#ea580c", dash=True),
    ]
    if pts:
        out.append(line([(i, min(b.psi_floor or 0.0, ymax)) for i, b in pts], "#9ca3af", dash=True))
        out.append(line([(i, b.psi or 0.0) for i, b in pts], "#2563eb"))
        for i, b in pts:
            cx, cy = xy(i, b.psi or 0.0)
            color = "#dc2626" if b.status == DRIFT else "#2563eb"
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{color}"><title>{b.start:%Y-%m-%d}: PSI {b.psi:.3f}</title></circle>')
    out.append("</svg>")
    return "\n".join(out)


def render_html(r: DriftReport) -> str:
    rows = []
    for f in r.features:
        cells = "".join(f'<td class="{b.status}">{escape(_cell(b))}</td>' for b in f.buckets)
        rows.append(f"<tr><td>{escape(f.feature)}</td><td>{escape(_summary(f))}</td>{cells}</tr>")
    head = "".join(f"<th>{b:%Y-%m-%d}</th>" for b in r.bucket_starts)
    plots = "\n".join(f"<h2>{escape(f.feature)}</h2>\n{psi_svg(f, r.thresholds.psi_fail)}" for f in r.drifting)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escape(_title(r))}</title>
<style>body{{font-family:Helvetica,Arial,sans-serif}} table{{border-collapse:collapse}} td,th{{border:1px solid #ddd;padding:3px 6px;text-align:right}}
td:first-child,td:nth-child(2){{text-align:left}} .drift{{background:#fecaca}} .warn{{background:#fef3c7}} .reference,.empty{{color:#9ca3af}}</style>
</head><body>
<h1>{escape(_title(r))}</h1>
<table><tr><th>feature</th><th>status</th>{head}</tr>
{chr(10).join(rows)}
</table>
<p>{len(r.drifting)} of {len(r.features)} features drift.</p>
{plots}
</body></html>
"""
