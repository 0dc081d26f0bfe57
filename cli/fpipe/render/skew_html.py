"""`--format html`: one self-contained file (inline CSS and SVG, no scripts, no network), small.

Per failing feature: served vs offline histograms (or category shares) and a served-vs-offline scatter.
"""

from __future__ import annotations

import html
import math

from fpipe.render.skew_common import STATUS_TEXT, cause, checks_summary, headline, num, pct, since
from fpipe.skew.report import PlotData, SkewReport

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right}.pass{color:#1a7f37}.warn{color:#9a6700}.fail{color:#cf222e;font-weight:bold}
.inconclusive{color:#0969da}code{background:#f4f4f4;padding:0 3px}svg{margin:4px 12px 4px 0}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""
SERVED, OFFLINE, BAD = "#d1495b", "#30638e", "#d1495b"
W, H, PAD = 420, 220, 34


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _bars(p: PlotData) -> str:
    n = len(p.labels)
    if n == 0:
        return ""
    top = max([*p.served, *p.offline, 1e-12])
    bw = (W - 2 * PAD) / n
    out = [f'<svg width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="served vs offline">']
    out.append(f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#999"/>')
    for i in range(n):
        for j, (vals, color) in enumerate(((p.offline, OFFLINE), (p.served, SERVED))):
            h = (H - 2 * PAD) * vals[i] / top
            x = PAD + i * bw + j * bw / 2
            out.append(
                f'<rect x="{x:.1f}" y="{H - PAD - h:.1f}" width="{max(bw / 2 - 1, 0.5):.1f}" height="{h:.1f}" '
                f'fill="{color}" opacity="0.8"><title>{_esc(p.labels[i])}: {vals[i]:.3%}</title></rect>'
            )
    if p.kind == "numeric" and p.edges:
        out.append(f'<text x="{PAD}" y="{H - 12}" font-size="10">{p.edges[0]:.4g}</text>')
        out.append(f'<text x="{W - PAD}" y="{H - 12}" font-size="10" text-anchor="end">{p.edges[-1]:.4g}</text>')
    else:
        for i, lab in enumerate(p.labels):
            out.append(f'<text x="{PAD + (i + 0.5) * bw:.1f}" y="{H - 20}" font-size="9" text-anchor="middle">{_esc(lab[:10])}</text>')
    out.append(f'<text x="{PAD}" y="14" font-size="11">share per bin (max {top:.1%})</text></svg>')
    return "".join(out)


def _scatter(p: PlotData) -> str:
    if not p.scatter:
        return ""
    xs = [o for o, _, _ in p.scatter] + [s for _, s, _ in p.scatter]
    lo, hi = min(xs), max(xs)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5

    def sx(v: float) -> float:
        return PAD + (W - 2 * PAD) * (v - lo) / (hi - lo)

    def sy(v: float) -> float:
        return H - PAD - (H - 2 * PAD) * (v - lo) / (hi - lo)

    out = [f'<svg width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="served against offline">']
    out.append(f'<line x1="{sx(lo):.1f}" y1="{sy(lo):.1f}" x2="{sx(hi):.1f}" y2="{sy(hi):.1f}" stroke="#bbb"/>')
    for o, s, m in p.scatter:
        if math.isfinite(o) and math.isfinite(s):
            out.append(f'<circle cx="{sx(o):.1f}" cy="{sy(s):.1f}" r="2" fill="{OFFLINE if m else BAD}" opacity="0.6"/>')
    out.append(f'<text x="{W / 2:.0f}" y="{H - 6}" font-size="11" text-anchor="middle">offline</text>')
    out.append(f'<text x="10" y="{H / 2:.0f}" font-size="11" transform="rotate(-90 10 {H / 2:.0f})" text-anchor="middle">served</text>')
    out.append(f'<text x="{PAD}" y="14" font-size="11">{lo:.4g} .. {hi:.4g}</text></svg>')
    return "".join(out)


def render_html(report: SkewReport) -> str:
    rows = []
    for f in report.features:
        rows.append(
            "<tr>"
            + f"<td><code>{_esc(f.name)}</code></td><td class='{f.status}'>{STATUS_TEXT[f.status]}</td>"
            + f"<td class='n'>{pct(f.row.match_rate)}</td><td class='n'>{f.row.mismatches:,}</td>"
            + f"<td>{_esc(since(f))}</td><td class='n'>{num(f.distribution.psi, 3)}</td>"
            + f"<td class='n'>{pct(f.distribution.null_rate_change, 1)}</td><td>{_esc(cause(f))}</td></tr>"
        )
    sections = []
    for f in report.features:
        if f.status not in ("fail", "warn"):
            continue
        parts = [f"<h2><code>{_esc(f.name)}</code> <span class='{f.status}'>{STATUS_TEXT[f.status]}</span></h2>"]
        parts.append(f"<p>{_esc(checks_summary(f))}</p>")
        if f.diagnosis is not None:
            parts.append(f"<p><b>Likely cause:</b> {_esc(f.diagnosis.summary)}. {_esc(f.diagnosis.evidence)}.</p>")
        if f.plot is not None:
            parts.append(
                "<div class='legend'><span style='background:" + OFFLINE + "'></span>offline"
                "<span style='background:" + SERVED + "'></span>served (scatter: red = mismatch)</div>"
            )
            parts.append("<div>" + _bars(f.plot) + _scatter(f.plot) + "</div>")
        if f.row.worst_rows:
            cols = list(f.row.worst_rows[0])
            head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
            body = "".join(
                "<tr>" + "".join(f"<td>{_esc(w[c])}</td>" for c in cols) + "</tr>" for w in f.row.worst_rows
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        sections.append("<section>" + "".join(parts) + "</section>")
    notes = "".join(f"<p><i>{_esc(n)}</i></p>" for n in report.notes)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>fpipe skew report {_esc(report.training_set or '')}</title><style>{CSS}</style></head><body>"
        f"<h1>Train/serve skew: <span class='{report.status}'>{STATUS_TEXT[report.status]}</span></h1>"
        f"<p>{_esc(headline(report))}</p>"
        "<table><tr><th>feature</th><th>status</th><th>match rate</th><th>mismatches</th><th>when</th>"
        "<th>PSI</th><th>null-rate Δ</th><th>likely cause</th></tr>" + "".join(rows) + "</table>"
        + "".join(sections) + notes + "</body></html>\n"
    )
