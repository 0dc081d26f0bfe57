"""`fpipe explain` as Rich tables: one summary row per feature, then the source rows behind each value."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table

from fpipe.lineage import Explanation, FeatureExplanation
from fpipe.render.console import make_console

STYLE = {"won": "bold green", "in window": "green", "won, too old": "yellow", "not yet available": "bold red", "never visible": "dim"}


def fmt_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S%z").replace("+0000", "Z")
    return str(v)


def rule_text(f: FeatureExplanation) -> str:
    from fpipe.spec.durations import format_duration

    s = f.spec
    if s.expr is not None:
        return s.expr
    text = f"{s.agg}({s.column or '*'}) of {s.source}"
    if s.window:
        text += f", window {format_duration(s.window)}"
    if s.ttl:
        text += f", ttl {format_duration(s.ttl)}"
    if s.where:
        text += f", where {s.where}"
    if s.default is not None:
        text += f", default {s.default}"
    return text


def render_explanation(ex: Explanation, *, no_color: bool = False, rows: bool = True) -> None:
    console = make_console(no_color=no_color)
    keys = ", ".join(f"{k}={v}" for k, v in ex.keys.items())
    head = Table(title=f"features at {fmt_value(ex.at)} for {keys}" + (f" ({ex.training_set})" if ex.training_set else ""))
    head.add_column("feature")
    head.add_column("value", justify="right")
    head.add_column("rule")
    head.add_column("used", justify="right")
    head.add_column("not yet available", justify="right")
    for f in ex.features:
        used = f.counts.get("in window", 0) + f.counts.get("won", 0) + f.counts.get("won, too old", 0)
        late = f.counts.get("not yet available", 0)
        head.add_row(f.name, fmt_value(f.value), rule_text(f), "" if f.rows is None else str(used), "" if f.rows is None else str(late))
    console.print(head)
    for name, why in ex.skipped.items():
        console.print(f"note: {name} not explained: {why}")
    if not rows:
        return
    for f in ex.features:
        if f.rows is None or f.rows.height == 0:
            continue
        shown = f.rows.height
        total = sum(n for s, n in f.counts.items() if s not in ("outside window", "after t", "filtered by where"))
        t = Table(title=f"{f.name} = {fmt_value(f.value)}" + (f"  (showing {shown} of {total} rows)" if shown < total else ""))
        cols = [c for c in f.rows.columns if c not in ("_et", "_avail")]
        for c in cols:
            t.add_column("role" if c == "_status" else "row" if c == "_pos" else "visible at" if c == "_vis" else c)
        for r in f.rows.iter_rows(named=True):
            style = STYLE.get(r["_status"])
            t.add_row(*(fmt_value(r[c]) for c in cols), style=style)
        console.print(t)
        other = {s: n for s, n in f.counts.items() if s in ("outside window", "after t", "filtered by where")}
        if other:
            console.print("  also: " + ", ".join(f"{n} {s}" for s, n in other.items()))
