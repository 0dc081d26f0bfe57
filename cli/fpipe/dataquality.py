"""Data checks on a project's sources (`fpipe validate --data`, `fpipe late`): files readable, columns and
types as the definitions need, row checks (engine/checks.py), late and out-of-order rows (engine/lateness.py).

Bad input (a missing file, a missing column, a column of the wrong type) raises DataError (exit 2) with
every such problem found; failing row checks come back as diagnostics: errors for `on_fail: fail` sources
(exit 1), warnings for `quarantine` and `warn` sources (backfill sets those rows aside or keeps them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from fpipe.engine.checks import ChecksOutcome, failure_diagnostics, null_unparseable, run_checks
from fpipe.engine.lateness import LatenessReport, human_seconds, lateness_report
from fpipe.engine.visibility import normalise_source
from fpipe.errors import DataError, Diagnostic
from fpipe.io.sources import display_path
from fpipe.spec.expr import parse_expr, referenced_names

if TYPE_CHECKING:
    from fpipe.project import Project


def source_columns_used(project: Project, name: str) -> list[str]:
    """Every column of source `name` that a feature, label, spine or check of the project reads."""
    defs = project.defs
    extra: list[str] = []
    for sp in defs.spines.values():
        if sp.source == name:
            extra.extend(sp.columns or ())
            if sp.where:
                extra.extend(n for n, _ in referenced_names(parse_expr(sp.where)))
    feats = [f for f in defs.features.values() if not f.is_derived]
    labels = [lb for lb in defs.labels.values() if lb.spine_column is None]
    return project.source_columns(name, feats, labels, extra)


def read_for_checks(project: Project, name: str) -> pl.DataFrame:
    return project.read_source(name, source_columns_used(project, name))


def check_data(project: Project, *, late_threshold: timedelta = timedelta(hours=1), now: datetime | None = None) -> list[Diagnostic]:
    defs = project.defs
    now = now or datetime.now(UTC)
    bad_input: list[Diagnostic] = []
    out: list[Diagnostic] = []
    for name, src in defs.sources.items():
        where = display_path(src.path)
        try:
            frame = read_for_checks(project, name)
            feats = [f for f in defs.features.values() if f.source == name]
            labels = [lb for lb in defs.labels.values() if lb.source == name]
            project._check_types({name: frame}, feats, labels)
            res = run_checks(frame, src, defs.timezone, timestamps=True, where=where)
            out.extend(failure_diagnostics(res, "error" if src.on_fail == "fail" else "warning"))
            if src.event_time is not None:
                norm, _ = normalise_source(null_unparseable(frame, src, defs.timezone), src, defs.timezone, where=where)
                rep = lateness_report(name, norm, threshold=late_threshold, now=now, has_available_time=src.available_time is not None)
                out.extend(lateness_notes(rep, where))
        except DataError as exc:
            bad_input.extend(exc.diagnostics)
    if bad_input:
        raise DataError([*bad_input, *out])
    return out


def lateness_notes(rep: LatenessReport, where: str) -> list[Diagnostic]:
    """One `note:` line per source; a warning for events in the future."""
    notes: list[Diagnostic] = []
    if rep.has_available_time:
        msg = (
            f"source '{rep.source}': lateness p50 {human_seconds(rep.p50_s)}, p95 {human_seconds(rep.p95_s)}, "
            f"p99 {human_seconds(rep.p99_s)}, max {human_seconds(rep.max_s)}; "
            f"{rep.later_than_threshold_share:.1%} later than {human_seconds(rep.threshold_s)}; "
            f"{rep.out_of_order:,} rows ({rep.out_of_order_share:.1%}) out of event-time order"
        )
        notes.append(Diagnostic(msg, file=where, severity="note", hint=f"a fixed `lag: {rep.suggested_lag}` covers 99% of rows" if rep.suggested_lag else None))
    elif rep.out_of_order:
        notes.append(Diagnostic(f"source '{rep.source}': {rep.out_of_order:,} rows ({rep.out_of_order_share:.1%}) out of event-time order", file=where, severity="note"))
    if rep.future_event_time:
        notes.append(Diagnostic(f"source '{rep.source}': {rep.future_event_time:,} rows have an event_time in the future", file=where, severity="warning"))
    if rep.available_before_event:
        notes.append(
            Diagnostic(
                f"source '{rep.source}': {rep.available_before_event:,} rows are available before their event_time",
                file=where,
                severity="note",
                hint="fpipe does not see them before their event time; check the clocks that write these columns",
            )
        )
    return notes


def lateness(project: Project, names: list[str] | None, *, threshold: timedelta, now: datetime | None = None) -> list[LatenessReport]:
    """The late/out-of-order report of each named source (default: every source with an event_time).

    Unparseable time strings count as never visible here (backfill's `on_fail` decides what happens to them)."""
    defs = project.defs
    now = now or datetime.now(UTC)
    names = names or [n for n, s in defs.sources.items() if s.event_time is not None]
    reports = []
    for name in names:
        src = defs.sources[name]
        if src.event_time is None:
            continue
        cols = [c for c in (src.event_time, src.available_time) if c]
        frame = project.read_source(name, cols)
        where = display_path(src.path)
        norm, _ = normalise_source(null_unparseable(frame, src, defs.timezone), src, defs.timezone, where=where)
        reports.append(lateness_report(name, norm, threshold=threshold, now=now, has_available_time=src.available_time is not None))
    return reports


def with_all_columns(project: Project, outcome: ChecksOutcome) -> ChecksOutcome:
    """Quarantined rows with every column of their source (the engine read only the columns it needs)."""
    from fpipe.engine.checks import POS, REASON, quarantine_frame

    changed = False
    for name, res in outcome.results.items():
        if res.on_fail != "quarantine" or res.n_failed == 0:
            continue
        full = project.read_source(name, None)
        if set(full.columns) <= set(res.failed.columns):
            continue
        full = full.with_row_index(POS).with_columns(pl.col(POS).cast(pl.Int64))
        res.failed = res.failed.select(POS, REASON).join(full, on=POS, how="left", maintain_order="left").select(
            [POS, *[c for c in full.columns if c != POS], REASON]
        )
        changed = True
    if changed:
        outcome.quarantine = quarantine_frame(list(outcome.results.values()))
    return outcome
