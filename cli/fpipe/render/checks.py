"""Row-check outcomes: per source read / used / quarantined / warned, and the failing checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fpipe.engine.checks import ChecksOutcome
from fpipe.engine.lateness import LatenessReport, human_seconds
from fpipe.render.console import make_console

if TYPE_CHECKING:
    from rich.table import Table


def checks_table(outcome: ChecksOutcome) -> Table:
    from rich.table import Table

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


def render_lateness(reports: list[LatenessReport], *, no_color: bool = False) -> None:
    """One row per source: lateness quantiles, late share, out-of-order rows, future rows, suggested lag."""
    from rich.table import Table

    console = make_console(no_color=no_color)
    threshold = human_seconds(reports[0].threshold_s) if reports else "-"
    table = Table(title="late and out-of-order data (lateness = available - event time)")
    for col in ("source", "rows", "p50", "p95", "p99", "max", f"> {threshold}", "out of order", "future", "early", "never vis.", "lag"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for r in reports:
        table.add_row(
            r.source, f"{r.rows:,}", human_seconds(r.p50_s), human_seconds(r.p95_s), human_seconds(r.p99_s), human_seconds(r.max_s),
            f"{r.later_than_threshold_share:.1%}", f"{r.out_of_order_share:.1%}", f"{r.future_event_time:,}",
            f"{r.available_before_event:,}", f"{r.never_visible:,}", (r.suggested_lag if r.has_available_time else None) or "-",
        )
    console.print(table)
    console.print(
        "out of order: rows whose event time is before an earlier row's (input order); future: event time after now;\n"
        "early: available before the event time; lag: the p99 lateness rounded up, a fixed `lag:` covering 99% of rows",
        markup=False,
    )
