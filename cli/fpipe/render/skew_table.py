"""The terminal report: a Rich table, one row per feature, then the evidence for each failing feature."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from fpipe.render.skew_common import STATUS_TEXT, headline, num, pct, short_cause, short_since
from fpipe.skew.report import SkewReport

STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "inconclusive": "cyan"}


def skew_renderable(report: SkewReport) -> Group:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("feature", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("match", justify="right", no_wrap=True)
    table.add_column("mismatches", justify="right", no_wrap=True)
    table.add_column("PSI", justify="right", no_wrap=True)
    table.add_column("when", no_wrap=True)
    table.add_column("cause")
    for f in report.features:
        table.add_row(
            f.name,
            Text(STATUS_TEXT[f.status], style=STYLE[f.status]),
            pct(f.row.match_rate, 1),
            f"{f.row.mismatches:,}",
            num(f.distribution.psi, 2),
            short_since(f),
            short_cause(f),
        )
    parts: list[object] = [Text(headline(report)), table]
    for f in report.features:
        if f.diagnosis is None:
            continue
        d = f.diagnosis
        parts.append(Text(f"{f.name}: {d.summary}", style="bold"))
        parts.append(Text(f"  {d.evidence}"))
        if f.row.worst_rows:
            w = f.row.worst_rows[0]
            ident = ", ".join(f"{k}={v}" for k, v in w.items() if k not in ("served", "offline"))
            parts.append(Text(f"  worst row: {ident}: served {w['served']!r}, offline {w['offline']!r}"))
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    return Group(*parts)  # type: ignore[arg-type]


def render_table(report: SkewReport, *, width: int = 140, color: bool = False) -> str:
    import io

    console = Console(width=width, record=True, no_color=not color, force_terminal=color, file=io.StringIO())
    console.print(skew_renderable(report))
    return console.export_text(styles=color)
