"""Row checks (`checks:` with `on_fail:`) for partitioned and Dask builds: the same rows, reasons, counts,
failures and quarantine as a plain backfill (`Project.apply_checks` over `engine.checks.run_checks`).

The driver checks each source once, *before* partitioning, streaming it in chunks of `CHUNK_ROWS` rows;
the tasks then only drop the quarantined rows (by input position, pushed into their scan) and, under
`on_fail: warn`, null unparseable time strings of their own rows (`engine.checks.null_unparseable`, per row).

Why the driver and not the tasks:
- results must not depend on the partitioning: `unique` compares rows across partitions (an `event_id`
  repeated by two users lands in two user partitions), `_pos` and the `repeats row N` reasons are
  positions in the whole source, and a source read by several entity groups (partitioned by each entity)
  or whole by every task would be checked, counted and quarantined once per group or task;
- memory stays bounded by the chunk, not the source: per-row checks (`not_null`, `min`, `max`, `in`,
  `regex`, `type`, unparseable timestamps) read only the checked and time columns, one contiguous chunk at
  a time (`collect_batches`), and each `unique` check reads only its own columns, one hash bucket of the
  values at a time (equal values share a bucket; the buckets are as many as the chunks). Only the failing
  rows are kept (they are the quarantine, held in memory by a plain backfill too); their full rows are
  gathered at the end by position, a scan whose filter is pushed down;
- the tasks keep reading only their partition: the positions to drop are a filter on a row index of the
  scan (for integer keys it is pushed down together with the partition's modulo predicate).
The cost is one extra scan of the checked columns (plus one per `unique` bucket over its columns).

Identical results: the checks run in *parts* that together are exactly `run_checks`' rules, in its order:
runs of per-row checks (any chunking gives the same answers), each `unique` check alone (exact within a
bucket), then the timestamp rules. A row's `_reason` is its parts' reasons joined by `; ` in part order,
which is the plain rule order; each check's count is the sum over chunks or buckets and its example the
reason of its first failing row in input order. String time columns are parsed per chunk (as the engine
already parses them per partition), so format inference sees at most `CHUNK_ROWS` rows at a time.

The quarantine (`<out>.quarantine.parquet`) is therefore the plain one: sources in the training set's
input order, each source's rows in input order (`_pos`), every source column for quarantining sources.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from fpipe.engine.checks import (
    POS,
    REASON,
    CheckCount,
    ChecksOutcome,
    SourceChecks,
    check_columns,
    failure_diagnostics,
    quarantine_frame,
    run_checks,
)
from fpipe.errors import Diagnostic
from fpipe.spec.model import CheckSpec, Definitions, SourceSpec

CHUNK_ROWS = 1_000_000


@dataclass(frozen=True)
class Part:
    """Consecutive rules of `run_checks`: per-row checks (`unique` False) or one `unique` check."""

    checks: tuple[CheckSpec, ...]
    unique: bool = False
    timestamps: bool = False


def plan_parts(source: SourceSpec, timestamps: bool) -> list[Part]:
    """`source.checks` as parts whose rules, concatenated, are `run_checks`' rules in its order."""
    parts: list[Part] = []
    run: list[CheckSpec] = []
    for chk in source.checks:
        if chk.unique:  # `run_checks` adds a check's `unique` rule before its other rules
            if run:
                parts.append(Part(tuple(run)))
                run = []
            parts.append(Part((CheckSpec(chk.column, unique=True, loc=chk.loc),), unique=True))
            rest = dataclasses.replace(chk, unique=False)
            if rest.not_null or rest.min is not None or rest.max is not None or rest.allowed is not None or rest.regex or rest.dtype:
                run.append(rest)
        else:
            run.append(chk)
    parts.append(Part(tuple(run), timestamps=timestamps))  # the timestamp rules come last
    return parts


def _scan(source: SourceSpec, columns: Sequence[str] | None, predicate: pl.Expr | None) -> pl.LazyFrame:
    """The source's rows (those of `predicate`, as the plain build reads them) with `_pos`, their input position."""
    from fpipe.io.sources import scan

    lf, _ = scan(source.path, source.format)
    if predicate is not None:
        lf = lf.filter(predicate)
    lf = lf.with_row_index(POS)
    if columns is not None:
        schema = lf.collect_schema().names()
        wanted = set(columns)
        lf = lf.select([POS, *(c for c in schema if c in wanted and c != POS)])
    return lf.with_columns(pl.col(POS).cast(pl.Int64))


@dataclass
class _Merged:
    """The parts' results over every chunk or bucket; `problems` and `counts` per part (flattened in part order)."""

    rows: int = 0
    counts: dict[int, dict[tuple[str, str], CheckCount]] = dataclasses.field(default_factory=dict)
    first_pos: dict[tuple[int, str, str], int] = dataclasses.field(default_factory=dict)
    problems: dict[int, list[Diagnostic]] = dataclasses.field(default_factory=dict)
    failed: list[pl.DataFrame] = dataclasses.field(default_factory=list)  # (_pos, _part, _reason)

    def add(self, res: SourceChecks, part: int, *, first: bool, in_order: bool) -> None:
        """`first`: the part's first chunk or bucket (column problems depend on the schema only);
        `in_order`: chunks arrive in input order (else, a `unique` part: one rule, buckets in any order)."""
        if first:
            self.problems[part] = list(res.column_problems)
        counts = self.counts.setdefault(part, {})
        for c in res.counts:
            acc = counts.setdefault((c.column, c.check), CheckCount(c.column, c.check, 0))
            acc.failed += c.failed
            if not c.failed:
                continue
            if in_order:  # the example: the reason of the check's first failing row in input order
                if acc.example is None:
                    acc.example = c.example
            else:
                pos = int(res.failed.get_column(POS).min())  # type: ignore[arg-type]
                key = (part, c.column, c.check)
                if key not in self.first_pos or pos < self.first_pos[key]:
                    self.first_pos[key] = pos
                    acc.example = c.example
        if res.n_failed:
            self.failed.append(res.failed.select(POS, pl.lit(part, pl.Int32).alias("_part"), REASON))

    def column_problems(self) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        for part in sorted(self.problems):
            for p in self.problems[part]:
                if not out or out[-1] != p:  # a check split in two parts (missing column) reports once
                    out.append(p)
        return out

    def ordered_counts(self, time_cols: Sequence[str]) -> list[CheckCount]:
        """The plain rule order: column checks part by part, then the timestamp rules by column."""
        flat = [c for part in sorted(self.counts) for c in self.counts[part].values()]
        stamps = {c.column: c for c in flat if c.check == "timestamp"}
        return [*(c for c in flat if c.check != "timestamp"), *(stamps[t] for t in time_cols if t in stamps)]


def _run(frame: pl.DataFrame, source: SourceSpec, part: Part, tz: str, where: str) -> SourceChecks:
    spec = dataclasses.replace(source, checks=part.checks)
    return run_checks(frame, spec, tz, timestamps=part.timestamps, where=where)


def check_source(
    source: SourceSpec,
    columns: Sequence[str],
    tz: str,
    *,
    where: str,
    predicate: pl.Expr | None = None,
    chunk_rows: int | None = None,
) -> SourceChecks:
    """`run_checks` over the whole source (its rows of `predicate`), in bounded memory.

    `columns`: the columns the build reads (the failing rows carry them, every column when quarantining)."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    timestamps = source.on_fail != "fail"  # under `fail` unparseable times stay the engine's data error
    parts = plan_parts(source, timestamps)
    row_parts = [i for i, p in enumerate(parts) if not p.unique]
    time_cols = [c for c in (source.event_time, source.available_time) if c] if timestamps else []
    read = list(dict.fromkeys([*check_columns(source), *time_cols]))
    merged = _Merged()
    lf = _scan(source, read, predicate)
    first = True
    empty = lf.head(0).collect(engine="in-memory")
    for chunk in lf.collect_batches(chunk_size=chunk_rows, maintain_order=True, engine="streaming"):
        if chunk.height == 0:
            continue
        merged.rows += chunk.height
        for i in row_parts:
            merged.add(_run(chunk, source, parts[i], tz, where), i, first=first, in_order=True)
        first = False
    if first:  # no rows: the rules' column problems (and empty counts), as `run_checks` gives them
        for i in row_parts:
            merged.add(_run(empty, source, parts[i], tz, where), i, first=True, in_order=True)
    buckets = max(1, math.ceil(merged.rows / chunk_rows))
    for i, part in enumerate(parts):
        if not part.unique:
            continue
        cols = [c.strip() for c in part.checks[0].column.split(",")]
        if any(c not in empty.columns for c in cols):
            merged.add(_run(empty, source, part, tz, where), i, first=True, in_order=True)
            continue
        base = _scan(source, cols, predicate)
        key = pl.struct(cols).hash() if len(cols) > 1 else pl.col(cols[0]).hash()
        for b in range(buckets):
            bucket = base if buckets == 1 else base.filter(key % buckets == b)
            frame = bucket.collect(engine="streaming").sort(POS)
            if frame.height or b == 0:
                merged.add(_run(frame, source, part, tz, where), i, first=b == 0, in_order=False)
    failed = _failed_rows(merged, source, columns, predicate)
    return SourceChecks(
        source.name, source.on_fail, merged.rows, failed, merged.ordered_counts(time_cols), merged.column_problems(), where
    )


def _failed_rows(
    merged: _Merged, source: SourceSpec, columns: Sequence[str], predicate: pl.Expr | None
) -> pl.DataFrame:
    """The failing rows (`_pos`, the columns, `_reason`) in input order; every column when quarantining."""
    full = source.on_fail == "quarantine"
    if not merged.failed:
        lf = _scan(source, None if full else columns, predicate)
        return lf.head(0).collect(engine="in-memory").with_columns(pl.lit(None, pl.String).alias(REASON))
    reasons = (
        pl.concat(merged.failed)
        .sort([POS, "_part"])
        .group_by(POS, maintain_order=True)
        .agg(pl.col(REASON).str.join("; "))
    )
    positions = reasons.get_column(POS)
    rows = (
        _scan(source, None if full else columns, predicate)
        .filter(pl.col(POS).is_in(positions.implode()))
        .collect(engine="streaming")
        .sort(POS)
    )
    return rows.join(reasons, on=POS, how="left", maintain_order="left")


def check_sources(
    defs: Definitions,
    source_columns: Mapping[str, Sequence[str]],
    predicates: Mapping[str, pl.Expr | None] | None = None,
    *,
    chunk_rows: int | None = None,
) -> tuple[ChecksOutcome, dict[str, np.ndarray]]:
    """The driver's checks of a partitioned build: the outcome (as `Project.apply_checks` gives it) and, per
    quarantining source, the sorted input positions its tasks drop. Raises ChecksFailed as the plain build
    does (`engine.checks.apply_checks`). `predicates`: the plain build's time-range read filter per source
    (never one for a quarantining source, which is read whole)."""
    from fpipe.errors import ChecksFailed
    from fpipe.io.sources import display_path, read_frame

    results: dict[str, SourceChecks] = {}
    drops: dict[str, np.ndarray] = {}
    problems: list[Diagnostic] = []
    for name, cols in source_columns.items():
        src = defs.sources[name]
        if not src.checks and src.on_fail == "fail":
            continue
        # the plain read's errors (a missing column) first, from a read of no rows
        read_frame(src.path, cols, src.format, what=f"source '{name}'", predicate=pl.lit(False))
        res = check_source(src, cols, defs.timezone, where=display_path(src.path),
                           predicate=(predicates or {}).get(name), chunk_rows=chunk_rows)
        results[name] = res
        if src.on_fail == "quarantine":
            problems.extend(res.column_problems)
            if res.n_failed:
                drops[name] = res.failed.get_column(POS).to_numpy()
        elif src.on_fail != "warn":
            problems.extend(failure_diagnostics(res))
    if problems:
        for i, p in enumerate(problems):
            if p.hint is None:
                problems[i] = dataclasses.replace(
                    p, hint="set `on_fail: quarantine` on the source to set failing rows aside (or `warn` to keep them); `fpipe validate --data` lists them"
                )
                break
        raise ChecksFailed(problems)
    return ChecksOutcome(results, quarantine_frame(list(results.values()))), drops
