"""Spines: the prediction instants, one output row each.

- from a source: one spine row per source row (input order), optional `where`, spine time =
  event_time + `offset`; output columns: the source's key columns (or `columns:`) and the spine time,
  named by `time:` (default: the source's event_time column name, or `spine_time` when an offset
  makes it a different instant).
- from a file: its rows as given (all columns, or `columns:`), the time column normalised to UTC.
- a schedule: ticks `start, start+every, ...` strictly before `end`; at each tick, every entity whose key
  appears in `entities_from` with event_time before the tick (and within `lookback` of it when set);
  ordered by tick, then key.
A spine row with a null time or key is kept; it sees no rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from fpipe.engine.expr import compile_expr
from fpipe.engine.timecols import UTC_US, to_utc
from fpipe.errors import DataError, Diagnostic, display_path
from fpipe.spec.model import Definitions, SpineSpec


@dataclass
class Spine:
    frame: pl.DataFrame  # output spine columns + `_row` + `_t`
    columns: list[str]  # output spine columns, in order
    time_column: str
    keys: dict[str, tuple[str, ...]]  # entity -> spine columns


def spine_keys_for(defs: Definitions, spine: SpineSpec) -> dict[str, tuple[str, ...]]:
    if spine.kind == "source" and spine.source is not None:
        keys = dict(defs.sources[spine.source].keys)
        keys.update(spine.keys)
        return keys
    if spine.kind == "schedule" and spine.entities_from is not None:
        return dict(defs.sources[spine.entities_from].keys)
    keys = {name: ent.keys for name, ent in defs.entities.items()}
    keys.update(spine.keys)
    return keys


def spine_time_column(defs: Definitions, spine: SpineSpec) -> str:
    if spine.time:
        return spine.time
    if spine.kind == "source" and spine.source is not None and not spine.offset:
        return defs.sources[spine.source].event_time or "spine_time"
    return "spine_time"  # with an offset the spine time is not the event time: don't reuse its name


def from_source(defs: Definitions, spec: SpineSpec, source_frame: pl.DataFrame) -> Spine:
    """`source_frame` is the normalised source (with `_et`, `_pos`)."""
    assert spec.source is not None
    source = defs.sources[spec.source]
    frame = source_frame.sort("_pos")
    if spec.where:
        frame = frame.filter(compile_expr(spec.where).fill_null(False))
    time_col = spine_time_column(defs, spec)
    keys = spine_keys_for(defs, spec)
    if spec.columns is not None:
        cols = [c for c in spec.columns if c != time_col]
    else:
        cols = []
        for parts in keys.values():
            cols.extend(c for c in parts if c not in cols and c != time_col)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DataError(
            Diagnostic(f"spine '{spec.name}': column '{missing[0]}' is not in source '{source.name}'", file=display_path(source.path))
        )
    out = frame.select(
        [*cols, (pl.col("_et") + pl.lit(spec.offset)).cast(UTC_US).alias(time_col)]
    ).with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64), pl.col(time_col).alias("_t"))
    return Spine(out, [*cols, time_col], time_col, keys)


def from_frame(defs: Definitions, spec: SpineSpec, frame: pl.DataFrame, where: str) -> Spine:
    """A file spine (or an override given with --spine), read from `where`."""
    time_col = spec.time or "spine_time"
    keys = spine_keys_for(defs, spec)
    tz = spec.timezone or defs.timezone
    frame = to_utc(frame, time_col, tz=tz, where=where, timestamp_format=spec.timestamp_format,
                   time_unit=spec.time_unit, out="_t")
    cols = list(spec.columns) if spec.columns is not None else [c for c in frame.columns if c != "_t"]
    for parts in keys.values():
        for c in parts:
            if c not in frame.columns:
                continue  # only entities the training set uses are checked (by the builder)
    frame = frame.with_columns(pl.col("_t").alias(time_col)) if time_col in cols else frame
    out = frame.select([*cols, "_t"]).with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    return Spine(out, cols, time_col, keys)


def from_schedule(defs: Definitions, spec: SpineSpec, source_frame: pl.DataFrame | None) -> Spine:
    assert spec.every is not None and spec.start is not None and spec.end is not None
    time_col = spine_time_column(defs, spec)
    ticks = pl.datetime_range(_utc(spec.start), _utc(spec.end), spec.every, closed="left", eager=True, time_unit="us")
    tick_frame = pl.DataFrame({time_col: ticks.cast(UTC_US)})
    keys: dict[str, tuple[str, ...]] = {}
    if spec.entities_from is not None and source_frame is not None:
        source = defs.sources[spec.entities_from]
        keys = dict(source.keys)
        key_cols: list[str] = []
        for parts in keys.values():
            key_cols.extend(c for c in parts if c not in key_cols)
        seen = source_frame.select([*key_cols, "_et"]).drop_nulls()
        pairs = tick_frame.join(seen, how="cross").filter(pl.col("_et") < pl.col(time_col))
        if spec.lookback is not None:
            pairs = pairs.filter(pl.col("_et") >= pl.col(time_col) - pl.lit(spec.lookback))
        out = pairs.select([time_col, *key_cols]).unique().sort([time_col, *key_cols])
        cols = [*key_cols, time_col]
        out = out.select(cols)
    else:
        out = tick_frame
        cols = [time_col]
    out = out.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64), pl.col(time_col).alias("_t"))
    return Spine(out, cols, time_col, keys)


def _utc(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def restrict(spine: Spine, start: datetime | None, end: datetime | None) -> Spine:
    """Keep spine rows with start <= t < end (rows with a null time are kept only without bounds)."""
    if start is None and end is None:
        return spine
    cond = pl.lit(True)
    if start is not None:
        cond = cond & (pl.col("_t") >= pl.lit(_utc(start)).cast(UTC_US))
    if end is not None:
        cond = cond & (pl.col("_t") < pl.lit(_utc(end)).cast(UTC_US))
    frame = spine.frame.filter(cond.fill_null(False)).drop("_row").with_row_index("_row")
    frame = frame.with_columns(pl.col("_row").cast(pl.Int64))
    return Spine(frame, spine.columns, spine.time_column, spine.keys)


def required_keys(spine: Spine, entities: Mapping[str, object], where: str) -> None:
    """Every entity the training set uses must have its key columns on the spine."""
    for entity in entities:
        parts = spine.keys.get(entity)
        if parts is None:
            raise DataError(
                Diagnostic(
                    f"the spine has no key columns for entity '{entity}'",
                    file=where,
                    hint=f"map it with `keys: {{{entity}: <column>}}` on the spine",
                )
            )
        for c in parts:
            if c not in spine.frame.columns:
                raise DataError(
                    Diagnostic(
                        f"spine column '{c}' (key of entity '{entity}') is missing",
                        file=where,
                        hint="columns present: " + ", ".join(c for c in spine.columns),
                    )
                )
