"""Row-check outcomes: per source read / used / quarantined / warned, and the failing checks."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from fpipe.engine.checks import ChecksOutcome
from fpipe.render.console import make_console


def checks_table(outcome: ChecksOutcome) -> Table:
    table = Table(title="row checks")
    for col, justify in (("source", "left"), ("on_fail", "left"), ("read", "right"), ("used", "right"),
                         ("quarantined", "right"), ("warned", "right"), ("failed checks", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name, c in outcome.counts().items():
        failed: dict[str, int] = c["failed_checks"]  # type: ignore[assignment]
        table.add_row(
            name, str(c["on_fail"]), f"{c['read']:,}", f"{c['used']:,}", f"{c['quarantined']:,}", f"{c['warned']:,}",
            ", ".join(f"{k} ({v:,})" for k, v in failed.items()) or "-",
        )
    return table


def render_checks(outcome: ChecksOutcome | None, quarantine_path: str | None = None, *, no_color: bool = False) -> None:
    """Print the checks table after a backfill (nothing when no source has checks)."""
    if outcome is None or not outcome.results:
        return
    console = make_console(no_color=no_color)
    console.print(checks_table(outcome))
    if outcome.n_quarantined and quarantine_path:
        console.print(f"{outcome.n_quarantined:,} quarantined rows, with a `_reason`, in {quarantine_path}")


def checks_dict(outcome: ChecksOutcome | None, quarantine_path: str | None = None) -> dict[str, Any]:
    if outcome is None:
        return {"sources": {}, "quarantined": 0, "quarantine_output": None}
    return {"sources": outcome.counts(), "quarantined": outcome.n_quarantined, "quarantine_output": quarantine_path}
