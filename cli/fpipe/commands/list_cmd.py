"""`fpipe list [--json]`: what the definitions hold, one table per kind."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from fpipe.app import options

HELP = """List the definitions: entities, sources, features, labels, spines, training sets, models.

Examples:

  fpipe list

  fpipe --defs feature_defs/shop list --json
"""

# kind -> (title, columns); each column is (header, function of the spec -> cell text)
KINDS = ("entities", "sources", "features", "labels", "spines", "training_sets", "models", "serving_logs")


def list_definitions(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object of lists, one per kind."),
) -> None:
    from fpipe.spec.loader import load_definitions

    opts = options(ctx)
    defs = load_definitions(opts.defs)
    if as_json:
        sys.stdout.write(json.dumps(definitions_json(defs), indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(no_color=opts.no_color, highlight=False, width=None if sys.stdout.isatty() else 160)
    for kind in KINDS:
        rows = table_rows(defs, kind)
        if not rows:
            continue
        table = Table(title=kind.replace("_", " "), title_justify="left", show_lines=False)
        for header in rows[0]:
            table.add_column(header, overflow="fold")
        for row in rows[1:]:
            table.add_row(*row)
        console.print(table)


def _dur(td: Any) -> str:
    from datetime import timedelta

    from fpipe.spec.durations import format_duration

    if td is None:
        return ""
    if td and td % timedelta(days=1) == timedelta(0):
        return f"{td // timedelta(days=1)}d"  # 30d, not 4w2d
    return format_duration(td)


def _keys(keys: Any) -> str:
    return ", ".join(f"{e}: {'+'.join(cols)}" for e, cols in keys.items())


def table_rows(defs: Any, kind: str) -> list[list[str]]:
    """Header row, then one row per definition of `kind` (plain strings: render anywhere)."""
    from fpipe.spec.loader import display_path

    items = list(getattr(defs, kind).values())
    if not items:
        return []
    if kind == "entities":
        return [["name", "keys"], *[[e.name, ", ".join(e.keys)] for e in items]]
    if kind == "sources":
        return [
            ["name", "path", "event_time", "available", "keys"],
            *[
                [
                    s.name,
                    display_path(s.path),
                    s.event_time or "(static)",
                    s.available_time or (f"+{_dur(s.lag)}" if s.lag else ""),
                    _keys(s.keys),
                ]
                for s in items
            ],
        ]
    if kind == "features":
        return [
            ["name", "entity", "source", "agg", "column", "window", "ttl", "expr"],
            *[
                [f.name, f.entity or "", f.source or "", f.agg or "", f.column or "", _dur(f.window), _dur(f.ttl), f.expr or ""]
                for f in items
            ],
        ]
    if kind == "labels":
        return [
            ["name", "entity", "source", "agg", "horizon", "gap", "censor", "expr"],
            *[
                [
                    lb.name,
                    lb.entity or "",
                    lb.source or (f"spine column {lb.spine_column}" if lb.spine_column else ""),
                    lb.agg if not lb.spine_column else "",
                    _dur(lb.horizon),
                    _dur(lb.gap) if not lb.spine_column else "",
                    lb.censor if not lb.spine_column else "",
                    lb.expr or "",
                ]
                for lb in items
            ],
        ]
    if kind == "spines":
        def origin(s: Any) -> str:
            if s.kind == "schedule":
                return f"every {_dur(s.every)}" + (f" from {s.entities_from}" if s.entities_from else "")
            if s.kind == "file":
                return display_path(s.path)
            return f"{s.source} {'+' if s.offset.total_seconds() >= 0 else ''}{_dur(s.offset)}"

        return [["name", "kind", "from"], *[[s.name, s.kind, origin(s)] for s in items]]
    if kind == "training_sets":
        return [
            ["name", "spine", "features", "label"],
            *[[t.name, t.spine, ", ".join(t.features), t.label or ""] for t in items],
        ]
    if kind == "models":
        return [["name", "training set", "objective"], *[[m.name, m.training_set, m.objective] for m in items]]
    if kind == "serving_logs":
        return [
            ["training set", "path", "time", "row_id"],
            *[[s.name, display_path(s.path), s.time, s.row_id or ""] for s in items],
        ]
    raise AssertionError(kind)


def to_json(value: Any) -> Any:
    """A spec value as JSON: durations as '7d', datetimes ISO, locations 'file:line:col'."""
    import dataclasses
    from datetime import datetime, timedelta
    from enum import Enum

    from fpipe.spec.model import Location

    if isinstance(value, Location):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, timedelta):
        return _dur(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def definitions_json(defs: Any) -> dict[str, list[dict[str, Any]]]:
    return {kind: [to_json(spec) for spec in getattr(defs, kind).values()] for kind in KINDS}


def register(app: typer.Typer) -> None:
    app.command("list", help=HELP)(list_definitions)
