"""`fpipe explain` as Rich tables: one summary row per feature, then the source rows behind each value."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table

from fpipe.lineage import LABEL_NOTE, Explanation, FeatureExplanation, LabelExplanation
from fpipe.render.console import make_console

STYLE = {"won": "bold green", "in window": "green", "won, too old": "yellow", "not yet available": "bold red", "never visible": "dim",
         "in label window": "green", "before label window": "dim", "after label window": "dim", "no event time": "dim"}


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
    return text + _where_default(s.where, s.default)


def _where_default(where: str | None, default: Any) -> str:
    """The `where` and `default` part of a feature's or label's rule."""
    return (f", where {where}" if where else "") + (f", default {default}" if default is not None else "")


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
        if ex.label is not None:
            render_label(console, ex.label, rows=False)
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
    if ex.label is not None:
        render_label(console, ex.label, rows=True)


def label_rule_text(lab: LabelExplanation) -> str:
    from fpipe.spec.durations import format_duration

    s = lab.spec
    if s.spine_column is not None:
        return f"spine column {s.spine_column}"
    assert s.horizon is not None
    text = f"{s.agg}({s.column or '*'}) of {s.source}, horizon {format_duration(s.horizon)}"
    if s.gap:
        text += f", gap {format_duration(s.gap)}"
    text += _where_default(s.where, s.default)
    if s.expr:
        text += f", then {s.expr}"
    return text + f", censor: {s.censor}"


def render_label(console: Any, lab: LabelExplanation, *, rows: bool = True) -> None:
    """The label in a table like the features' (value, rule, rows in the window), then its source rows."""
    head = Table(title="label")
    head.add_column("label")
    head.add_column("value", justify="right")
    head.add_column("rule")
    if lab.spec.spine_column is not None:
        vals = lab.spine_values or []
        text = "no spine row at this instant and key" if not vals else ", ".join(fmt_value(v) for v in vals)
        head.add_row(lab.name, text, label_rule_text(lab))
        console.print(head)
        if lab.skipped:
            console.print(f"note: label {lab.name} not explained: {lab.skipped}")
        return
    if lab.skipped is not None:
        console.print(f"note: label {lab.name} not explained: {lab.skipped}")
        return
    assert lab.window is not None
    head.add_column("label window")
    head.add_column("in window", justify="right")
    head.add_column("censored")
    lo, hi = (fmt_value(x) for x in lab.window)
    window = f"({lo}, {hi}]" if lab.inclusive else f"[{lo}, {hi})"
    used = lab.counts.get("in label window", 0)
    cens = f"yes: backfill {lab.action}" if lab.censored else "no"
    head.add_row(lab.name, fmt_value(lab.value), label_rule_text(lab), window, str(used), cens)
    console.print(head)
    console.print(f"  observed until {fmt_value(lab.observed_until)}; {LABEL_NOTE}")
    if not rows or lab.rows is None or lab.rows.height == 0:
        return
    shown = lab.rows.height
    total = sum(n for s, n in lab.counts.items() if s != "filtered by where")
    t = Table(title=f"label {lab.name} = {fmt_value(lab.value)}" + (f"  (showing {shown} of {total} rows)" if shown < total else ""))
    cols = [c for c in lab.rows.columns if c != "_et"]
    for c in cols:
        t.add_column("role" if c == "_status" else "row" if c == "_pos" else c)
    for r in lab.rows.iter_rows(named=True):
        t.add_row(*(fmt_value(r[c]) for c in cols), style=STYLE.get(r["_status"]))
    console.print(t)
    if lab.counts.get("filtered by where"):
        console.print(f"  also: {lab.counts['filtered by where']} filtered by where")
