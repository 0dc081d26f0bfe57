"""Visibility (SPEC section 3): when a source row may be seen by a feature computed at spine time t.

A row r is visible at t iff `avail(r) < t` (exclusive cutoff, the default) or `avail(r) <= t`
(inclusive), where avail(r) is its `available_time`, else `event_time + lag` (a lag set together with an availability
column delays it further; the loader allows only one in YAML, overrides may set both). Event time still bounds
everything: a row is never seen before its event time. Both rules collapse into one instant,

    _vis = max(event_time, avail)          (null when either is null: never visible)

and "visible at t" is `_vis < t` (exclusive) or `_vis <= t` (inclusive). Every kernel uses `_vis` and
nothing else for visibility, so this is the one place the rule lives.

`normalise_source` turns a raw source frame into the engine's form: original columns plus `_et`, `_avail`,
`_vis` and `_pos` (input order), with NaN read as null in float columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from fpipe.engine.timecols import UTC_US, source_time_to_utc
from fpipe.errors import display_path
from fpipe.spec.model import Cutoff, SourceSpec

STATIC_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)  # event time of every row of a static table


@dataclass
class SourceStats:
    rows: int = 0
    never_visible: int = 0  # null event_time or null availability
    nan_as_null: dict[str, int] = field(default_factory=dict)


def visible(t: pl.Expr, cutoff: Cutoff, vis: str = "_vis") -> pl.Expr:
    """Row visible at spine time t."""
    return pl.col(vis) <= t if cutoff is Cutoff.INCLUSIVE else pl.col(vis) < t


def normalise_source(
    frame: pl.DataFrame, source: SourceSpec, project_tz: str, where: str | None = None
) -> tuple[pl.DataFrame, SourceStats]:
    where = where or display_path(source.path)
    stats = SourceStats(rows=frame.height)
    frame = frame.with_row_index("_pos")
    # NaN in a numeric column is read as null (counted)
    float_cols = [c for c, t in frame.schema.items() if t in (pl.Float32, pl.Float64) and not c.startswith("_")]
    if float_cols and frame.height:
        nan_counts = frame.select([pl.col(c).is_nan().sum().alias(c) for c in float_cols]).row(0)
        stats.nan_as_null = {c: int(n) for c, n in zip(float_cols, nan_counts, strict=True) if n}
        if stats.nan_as_null:
            frame = frame.with_columns([pl.col(c).fill_nan(None) for c in stats.nan_as_null])
    if source.event_time is None:
        frame = frame.with_columns(pl.lit(STATIC_EPOCH).cast(UTC_US).alias("_et"))
    else:
        frame = source_time_to_utc(frame, source, source.event_time, project_tz=project_tz, where=where, out="_et")
    if source.available_time is not None:
        frame = source_time_to_utc(frame, source, source.available_time, project_tz=project_tz, where=where, out="_avail")
        if source.lag:  # a lag on top of an availability column (e.g. a skew diagnosis sweeping lags)
            frame = frame.with_columns(pl.col("_avail") + pl.lit(source.lag))
    else:
        frame = frame.with_columns((pl.col("_et") + pl.lit(source.lag)).alias("_avail"))
    # `_vis` = the later of the two, null when either is: a comparison (a null event time gives null), then the
    # rows without an available time masked (10M rows: 0.045 s, against 0.095 s for max_horizontal under a
    # null test)
    et, avail = pl.col("_et"), pl.col("_avail")
    frame = frame.with_columns(pl.when(avail > et).then(avail).otherwise(et).cast(UTC_US).alias("_vis"))
    frame = frame.with_columns(pl.when(avail.is_not_null()).then(pl.col("_vis")).alias("_vis"))
    stats.never_visible = int(frame.get_column("_vis").null_count())
    return frame, stats
