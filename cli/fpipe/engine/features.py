"""Features and labels of one entity: choose the kernel, apply the empty-window rule and `default`.

All features of one entity share one sorted spine (by key id, then time); features over the same
events (source, `where`, column) share their sorted prefix and rank tables.

Kernel choice (engine/kernels.py explains each algorithm and its cost):
- count, sum, mean (no hop)                     -> cumulative
- latest                                         -> ordered (running max rank), then `ttl`
- last, time_since_last (no hop)                 -> ordered over non-null rows, then the window edge
- first, time_since_first without window         -> ordered (running min rank) over non-null rows
- everything else                                -> pairs
Labels: count, sum, mean -> cumulative over event time; everything else -> pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import polars as pl

from fpipe.engine import kernels as K
from fpipe.engine.expr import compile_expr
from fpipe.errors import DataError, Diagnostic
from fpipe.spec.model import Cutoff, Definitions, FeatureSpec, LabelSpec, SourceSpec

CUMULATIVE = {"count", "sum", "mean"}


@dataclass
class EntitySpine:
    """The spine rows of one entity that have a time and a full key, sorted by (`_kid`, `_t`)."""

    sorted: pl.DataFrame  # `_row`, `_kid`, `_t`
    ids: pl.DataFrame  # key columns `_k0..` -> `_kid`
    key_dtypes: list[pl.DataType]


def key_columns(n: int) -> list[str]:
    return [f"_k{i}" for i in range(n)]


def entity_spine(spine: pl.DataFrame, spine_keys: Sequence[str]) -> EntitySpine:
    kcols = key_columns(len(spine_keys))
    frame = spine.select(K.ROW, K.T, *[pl.col(c).alias(k) for c, k in zip(spine_keys, kcols, strict=True)])
    frame = frame.filter(pl.col(K.T).is_not_null() & pl.all_horizontal([pl.col(k).is_not_null() for k in kcols]))
    dtypes = [frame.schema[k] for k in kcols]
    if len(kcols) == 1 and dtypes[0].is_integer():
        ids = frame.select(pl.col("_k0").unique()).with_columns(pl.col("_k0").cast(pl.Int64).alias("_kid"))
        keyed = frame.with_columns(pl.col("_k0").cast(pl.Int64).alias("_kid"))
    else:
        ids = frame.select(kcols).unique(maintain_order=True).with_row_index("_kid").with_columns(pl.col("_kid").cast(pl.Int64))
        keyed = frame.join(ids, on=kcols, how="left", maintain_order="left")
    return EntitySpine(keyed.select(K.ROW, "_kid", K.T).sort(["_kid", K.T]), ids, dtypes)


def prepare_events(
    source_frame: pl.DataFrame,
    source: SourceSpec,
    entity: str,
    column: str | None,
    where: str | None,
    espine: EntitySpine,
    *,
    skip_null_values: bool,
    label: bool = False,
) -> pl.DataFrame:
    """Normalised source rows -> the kernel's events: `where` applied, keys mapped to `_kid`."""
    src_keys = list(source.keys[entity])
    frame = source_frame
    if where:
        frame = frame.filter(compile_expr(where).fill_null(False))
    kcols = key_columns(len(src_keys))
    value = pl.col(column) if column else pl.lit(None, pl.Null)
    cols = []
    for c, k, dtype in zip(src_keys, kcols, espine.key_dtypes, strict=True):
        cols.append(pl.col(c).alias(k) if frame.schema[c] == dtype else pl.col(c).cast(dtype).alias(k))
    try:
        ev = frame.select([*cols, "_et", "_avail", "_vis", "_pos", value.alias("_v")])
    except pl.exceptions.InvalidOperationError:
        raise DataError(
            Diagnostic(
                f"key column(s) {', '.join(src_keys)} of source '{source.name}' cannot be compared with the spine's "
                f"({', '.join(str(d) for d in espine.key_dtypes)})",
                file=source.path,
                hint="store entity keys with the same type in every source and spine",
            )
        ) from None
    ev = ev.filter(pl.all_horizontal([pl.col(k).is_not_null() for k in kcols]))
    ev = ev.join(espine.ids, on=kcols, how="inner", maintain_order="left").drop(kcols)
    # labels are ground truth over event time: availability is ignored; features need a visible row
    if label:
        ev = ev.filter(pl.col("_et").is_not_null())
    else:
        ev = ev.filter(pl.col("_vis").is_not_null()).with_columns((pl.col("_vis") - pl.col("_et")).alias("_late"))
    if skip_null_values and column:
        ev = ev.filter(pl.col("_v").is_not_null())
    return ev


def output_dtype(agg: str, value_dtype: pl.DataType, has_value: bool) -> pl.DataType:
    if agg == "latest":
        return value_dtype
    return K._out_dtype(agg, value_dtype, has_value)


@dataclass
class _EventGroup:
    events: pl.DataFrame
    prefix: dict[tuple[str, timedelta | None, bool], pl.DataFrame] = field(default_factory=dict)
    counts: dict[tuple[timedelta, bool], tuple[pl.Series, pl.Series]] = field(default_factory=dict)
    markers: pl.DataFrame | None = None
    sorted_by: dict[str, pl.DataFrame] = field(default_factory=dict)  # events sorted by (_kid, on, _pos)
    any_late: dict[timedelta, bool] = field(default_factory=dict)
    by_time_at_t: dict[bool, pl.DataFrame] = field(default_factory=dict)
    pending: dict[tuple[timedelta, bool], pl.DataFrame] = field(default_factory=dict)
    best: dict[str, tuple[pl.DataFrame, pl.DataFrame]] = field(default_factory=dict)


def _value_dtype_for_sum(dtype: pl.DataType) -> pl.DataType:
    return pl.Int64() if (dtype.is_integer() or dtype == pl.Boolean) else pl.Float64()


class EntityFeatures:
    """Computes the features (and labels) of one entity over one spine, sharing sorted tables."""

    def __init__(self, defs: Definitions, spine: pl.DataFrame, spine_keys: Sequence[str]) -> None:
        self.defs = defs
        self.spine = spine
        self.es = entity_spine(spine, spine_keys)
        self.groups: dict[tuple[Any, ...], _EventGroup] = {}

    def _group(self, source_frame: pl.DataFrame, source: SourceSpec, entity: str, column: str | None,
               where: str | None, skip: bool, label: bool) -> _EventGroup:
        key = (source.name, entity, column, where, skip, label, id(source_frame))
        if key not in self.groups:
            ev = prepare_events(source_frame, source, entity, column, where, self.es, skip_null_values=skip, label=label)
            self.groups[key] = _EventGroup(ev)
        return self.groups[key]

    def _prefix(self, group: _EventGroup, on: str, window: timedelta | None, with_value: bool) -> pl.DataFrame:
        """Prefix table over `on`, counting only the rows that can be in a window of length `window`
        (lateness `_vis - _et` < window; all rows when None)."""
        if on not in group.sorted_by:
            # ties ordered by input position: deterministic float sums (a stable sort is 3x slower here)
            cols = ["_kid", on, "_pos", "_v", *(["_late"] if "_late" in group.events.columns else [])]
            group.sorted_by[on] = group.events.select(cols).sort(["_kid", on, "_pos"])
        ev = group.sorted_by[on]
        if window is not None:
            if window not in group.any_late:
                group.any_late[window] = bool(group.events.select((pl.col("_late") >= pl.lit(window)).any()).item())
            if not group.any_late[window]:
                window = None  # no row is late enough to matter: share the unweighted table
        with_value = with_value or ev.schema["_v"].is_numeric()  # one table serves count and sum alike
        cache_key = (on, window, with_value)
        if cache_key not in group.prefix:
            if with_value:
                ev = ev.with_columns(pl.col("_v").cast(_value_dtype_for_sum(ev.schema["_v"])))
            weight = (pl.col("_late") < pl.lit(window)) if window is not None else None
            group.prefix[cache_key] = K.prefix_table(ev, on, with_value, presorted=True, weight=weight)
        return group.prefix[cache_key]

    def _best(self, group: _EventGroup, pick: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        if pick not in group.best:
            ranked = K.rank_events(group.events)
            group.best[pick] = (ranked, K.running_best(ranked, pick))
        return group.best[pick]

    def feature(self, feature: FeatureSpec, source_frame: pl.DataFrame) -> tuple[pl.Series, pl.Series, pl.DataType]:
        """(value, n) aligned with `self.es.sorted`, and the output dtype."""
        assert feature.source and feature.entity and feature.agg
        defs = self.defs
        source = defs.sources[feature.source]
        inclusive = defs.feature_cutoff(feature) is Cutoff.INCLUSIVE
        agg = feature.agg
        has_value = feature.column is not None
        skip = has_value and (agg != "latest" or feature.skip_nulls)
        group = self._group(source_frame, source, feature.entity, feature.column, feature.where, skip, False)
        ev = group.events
        value_dtype = ev.schema["_v"]
        dtype = output_dtype(agg, value_dtype, has_value)
        sp = self.es.sorted
        window, hop = feature.window, feature.hop
        t = pl.col(K.T)

        float_window_sum = agg in ("sum", "mean") and window is not None and not _value_dtype_for_sum(value_dtype).is_integer()
        if agg in CUMULATIVE and hop is None and not float_window_sum:
            with_value = agg != "count"
            plus = K.lookup(sp, t, self._prefix(group, "_vis", window, with_value), "_vis", inclusive)
            minus = None
            if window is not None:
                minus = K.lookup(sp, t - pl.lit(window), self._prefix(group, "_et", window, with_value), "_et", inclusive)
            vdt = _value_dtype_for_sum(value_dtype) if with_value else None
            value, n = K.cumulative_from_tables(plus, minus, agg, vdt)
            return value, n, dtype

        if agg == "latest" or (agg in ("last", "time_since_last") and hop is None) or (
            agg in ("first", "time_since_first") and window is None
        ):
            pick = "min" if agg in ("first", "time_since_first") else "max"
            ranked, best = self._best(group, pick)
            hit = K.lookup(sp, t, best, "_vis", inclusive).get_column("_best")
            et = ranked.get_column("_et").gather(hit)
            frame = pl.DataFrame({"_t": sp.get_column(K.T), "_et": et, "_hit": hit})
            found = pl.col("_hit").is_not_null()
            if agg == "latest" and feature.ttl is not None:
                found = found & ((pl.col("_t") - pl.col("_et")) <= pl.lit(feature.ttl))
            if agg in ("last", "time_since_last") and window is not None:
                start = pl.col("_t") - pl.lit(window)
                found = found & (pl.col("_et") > start if inclusive else pl.col("_et") >= start)
            found_s = frame.select(found.fill_null(False)).to_series()
            if agg in ("time_since_last", "time_since_first"):
                vals = frame.select(K.seconds_between(pl.col("_t"), pl.col("_et"))).to_series()
            else:
                vals = ranked.get_column("_v").gather(hit)
            value = pl.select(pl.when(found_s).then(vals).otherwise(None)).to_series()
            return value, found_s.cast(pl.Int64), dtype

        condition = K.window_condition(defs.feature_cutoff(feature), window, hop)
        if (agg in ("min", "max") and value_dtype.is_numeric() or float_window_sum) and hop is None:
            return self._extreme(group, feature, agg, window, inclusive, condition, dtype)
        res = K.pairs(sp, ev, ["_kid"], agg, condition=condition, has_value=has_value, k=feature.k, ddof=feature.ddof)
        aligned = sp.select(K.ROW).join(res, on=K.ROW, how="left", maintain_order="left")
        return aligned.get_column(K.VAL), aligned.get_column(K.N).fill_null(0), dtype

    def _extreme(
        self,
        group: _EventGroup,
        feature: FeatureSpec,
        agg: str,
        window: timedelta | None,
        inclusive: bool,
        condition: K.CondBuilder,
        dtype: pl.DataType,
    ) -> tuple[pl.Series, pl.Series, pl.DataType]:
        """min / max, and float sum / mean over a window.

        Without a window (min/max): a running extreme in visibility order, read with one as-of lookup.
        With a window: a rolling aggregate over event time (spine instants as markers), which is exact for
        every spine row with no *pending* row (event time inside the window but not yet visible at t);
        the few spine rows that have one are recomputed with the pairs kernel. (Float sums use this rather
        than differences of running totals, which would carry the rounding error of the whole history.)
        """
        sp = self.es.sorted
        ev = group.events
        t = pl.col(K.T)
        if window is None:
            running = pl.col("_v").cum_max() if agg == "max" else pl.col("_v").cum_min()
            table = ev.sort(["_kid", "_vis"]).select("_kid", "_vis", running.over("_kid").alias("_x"))
            hit = K.lookup(sp, t, table, "_vis", inclusive)
            n = hit.get_column("_x").is_not_null().cast(pl.Int64)
            return hit.get_column("_x"), n, dtype
        n, pending = self._window_counts(group, window, inclusive)
        if group.markers is None:
            group.markers = _marker_frame(sp, ev, t)
        value = _rolling_from_markers(sp, group.markers, window, inclusive, agg)
        if pending.any():
            key = (window, inclusive)
            if key not in group.pending:
                rows = sp.filter(pending)
                group.pending[key] = K.pair_rows(rows, ev, ["_kid"], condition)
            res = K.aggregate_pairs(group.pending[key], agg, True)
            fixed = sp.select(K.ROW).join(res, on=K.ROW, how="left", maintain_order="left").get_column(K.VAL)
            value = pl.select(pl.when(pending).then(fixed).otherwise(value)).to_series()
        value = pl.select(pl.when(n > 0).then(value).otherwise(None)).to_series()
        return value.cast(dtype), n, dtype

    def _window_counts(self, group: _EventGroup, window: timedelta, inclusive: bool) -> tuple[pl.Series, pl.Series]:
        """The exact visible count n of a window, and whether a spine row has *pending* rows (event time in
        the window, not yet visible): pending = count by event time alone - n > 0."""
        key = (window, inclusive)
        if key not in group.counts:
            sp = self.es.sorted
            t = pl.col(K.T)
            plus = K.lookup(sp, t, self._prefix(group, "_vis", window, False), "_vis", inclusive)
            minus = K.lookup(sp, t - pl.lit(window), self._prefix(group, "_et", window, False), "_et", inclusive)
            n, _ = K.cumulative_from_tables(plus, minus, "count", None)
            et_table = self._prefix(group, "_et", None, False)
            if inclusive not in group.by_time_at_t:
                group.by_time_at_t[inclusive] = K.lookup(sp, t, et_table, "_et", inclusive)
            by_time, _ = K.cumulative_from_tables(
                group.by_time_at_t[inclusive],
                K.lookup(sp, t - pl.lit(window), et_table, "_et", inclusive),
                "count",
                None,
            )
            group.counts[key] = (n, (by_time - n) > 0)
        return group.counts[key]

    def label(self, label: LabelSpec, source_frame: pl.DataFrame) -> tuple[pl.Series, pl.Series, pl.DataType]:
        assert label.source and label.entity and label.horizon is not None
        defs = self.defs
        source = defs.sources[label.source]
        cutoff = defs.label_cutoff(label)
        inclusive = cutoff is Cutoff.INCLUSIVE
        agg = label.agg
        has_value = label.column is not None
        skip = has_value and agg != "latest"
        group = self._group(source_frame, source, label.entity, label.column, label.where, skip, True)
        ev = group.events
        dtype = output_dtype(agg, ev.schema["_v"], has_value)
        sp = self.es.sorted
        gap, horizon = label.gap, label.horizon
        t = pl.col(K.T)
        if agg in ("sum", "mean") and not _value_dtype_for_sum(ev.schema["_v"]).is_integer():
            count = K.lookup(sp, t + pl.lit(gap + horizon), self._prefix(group, "_et", None, False), "_et", inclusive)
            count_lo = K.lookup(sp, t + pl.lit(gap), self._prefix(group, "_et", None, False), "_et", inclusive)
            n, _ = K.cumulative_from_tables(count, count_lo, "count", None)
            value = _rolling_at(sp, ev, t + pl.lit(gap + horizon), horizon, inclusive, agg)
            return pl.select(pl.when(n > 0).then(value).otherwise(None)).to_series().cast(dtype), n, dtype
        if agg in CUMULATIVE:
            with_value = agg != "count"
            table = self._prefix(group, "_et", None, with_value)
            plus = K.lookup(sp, t + pl.lit(gap + horizon), table, "_et", inclusive)
            minus = K.lookup(sp, t + pl.lit(gap), table, "_et", inclusive)
            vdt = _value_dtype_for_sum(ev.schema["_v"]) if with_value else None
            value, n = K.cumulative_from_tables(plus, minus, agg, vdt)
            return value, n, dtype
        res = K.pairs(
            sp,
            ev,
            ["_kid"],
            "last" if agg == "latest" else agg,
            condition=K.label_condition(cutoff, gap, horizon),
            has_value=has_value,
            ddof=1,
        )
        aligned = sp.select(K.ROW).join(res, on=K.ROW, how="left", maintain_order="left")
        return aligned.get_column(K.VAL), aligned.get_column(K.N).fill_null(0), dtype


def _marker_frame(sp: pl.DataFrame, ev: pl.DataFrame, at: pl.Expr) -> pl.DataFrame:
    """Events (by event time) and the spine instants `at` as null-valued markers, sorted by key and time."""
    markers = sp.select("_kid", at.alias("_time"), pl.lit(None, ev.schema["_v"]).alias("_v"), pl.col(K.ROW))
    events = ev.select("_kid", pl.col("_et").alias("_time"), "_v", pl.lit(None, pl.Int64).alias(K.ROW))
    return pl.concat([events, markers], how="vertical").sort(["_kid", "_time"])


def _rolling_from_markers(sp: pl.DataFrame, both: pl.DataFrame, window: timedelta, inclusive: bool, agg: str) -> pl.Series:
    """`agg` of the events with event time in [at - window, at) (`(at - window, at]` when inclusive), per
    spine row, read at its marker from a rolling aggregate over event time."""
    closed: Literal["left", "right"] = "right" if inclusive else "left"
    at_markers = both.select(K.ROW, K.rolling(agg, "_time", window, closed).over("_kid").alias("_x")).filter(
        pl.col(K.ROW).is_not_null()
    )
    return sp.select(K.ROW).join(at_markers, on=K.ROW, how="left", maintain_order="left").get_column("_x")


def _rolling_at(sp: pl.DataFrame, ev: pl.DataFrame, at: pl.Expr, window: timedelta, inclusive: bool, agg: str) -> pl.Series:
    return _rolling_from_markers(sp, _marker_frame(sp, ev, at), window, inclusive, agg)


def finish(value: pl.Series, n: pl.Series, name: str, agg: str, default: Any, dtype: pl.DataType) -> pl.Series:
    """Empty windows: 0 for count/count_distinct/sum, else null; then `default` when empty."""
    frame = pl.DataFrame({"_v": value, "_n": n})
    val = pl.col("_v")
    empty = K.empty_value(agg, dtype)
    if empty is not None:
        val = pl.when(pl.col("_n") == 0).then(pl.lit(empty).cast(dtype)).otherwise(val)
    if default is not None:
        val = pl.when(pl.col("_n") == 0).then(pl.lit(default).cast(dtype, strict=False)).otherwise(val)
    return frame.select(val.cast(dtype, strict=False).alias(name)).to_series()


def fill_missing_rows(spine: pl.DataFrame, block: pl.DataFrame, empties: dict[str, tuple[str, Any, pl.DataType]]) -> pl.DataFrame:
    """Every spine row, in spine order: `_row` + the block's columns. Rows absent from the block (no time
    or no full key) see no rows: `default`, else 0 for count/count_distinct/sum, else null."""
    full = spine.select(K.ROW).join(block.with_columns(pl.lit(True).alias("_present")), on=K.ROW, how="left", maintain_order="left")
    exprs = []
    for name, (agg, default, dtype) in empties.items():
        fill = default if default is not None else K.empty_value(agg, dtype)
        if fill is not None:
            exprs.append(pl.when(pl.col("_present").is_null()).then(pl.lit(fill).cast(dtype, strict=False)).otherwise(pl.col(name)).alias(name))
    if exprs:
        full = full.with_columns(exprs)
    return full.drop("_present")


_DTYPES: dict[str, pl.DataType] = {
    "int64": pl.Int64(),
    "int32": pl.Int32(),
    "float64": pl.Float64(),
    "float32": pl.Float32(),
    "string": pl.String(),
    "bool": pl.Boolean(),
    "boolean": pl.Boolean(),
}


def cast_declared(series: pl.Series, dtype: str | None) -> pl.Series:
    if dtype is None or dtype.lower() not in _DTYPES:
        return series
    return series.cast(_DTYPES[dtype.lower()], strict=False)


def censor_mask(spine: pl.DataFrame, label: LabelSpec, source_frame: pl.DataFrame, source: SourceSpec) -> pl.Series:
    """True where the label window ends after the label source's observed end (censored)."""
    assert label.horizon is not None
    observed = label.observed_until or source.observed_until
    if observed is None:
        max_et = source_frame.get_column("_et").max()
        if max_et is None:  # no event at all: the latest event is -infinity, every window ends after it
            return spine.select(pl.col(K.T).is_not_null().alias("_censored")).to_series()
        observed_expr = pl.lit(max_et)
    else:
        observed_expr = pl.lit(observed).cast(pl.Datetime("us", "UTC"))
    end = pl.col(K.T) + pl.lit(label.gap + label.horizon)
    return spine.select((end > observed_expr).fill_null(False).alias("_censored")).to_series()
