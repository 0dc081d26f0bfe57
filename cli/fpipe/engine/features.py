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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import polars as pl

from fpipe.engine import kernels as K
from fpipe.engine import windows as W
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

    @property
    def integer_key(self) -> bool:
        """One integer key column, whose value (as Int64) is `_kid`."""
        return len(self.key_dtypes) == 1 and self.key_dtypes[0].is_integer()


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
    # one filter pass (each eager filter would copy every column of 10M rows): full keys; labels are ground
    # truth over event time (availability ignored), features need a visible row; values if nulls are skipped
    keep = [pl.col(k).is_not_null() for k in kcols]
    keep.append(pl.col("_et").is_not_null() if label else pl.col("_vis").is_not_null())
    if skip_null_values and column:
        keep.append(pl.col("_v").is_not_null())
    if espine.integer_key:  # `_kid` is the key itself: keep the spine's keys by a hash-set filter, no join
        keep.append(pl.col("_k0").is_in(espine.ids.get_column("_k0").implode()))
        return ev.lazy().filter(pl.all_horizontal(keep)).select(
            pl.col("_k0").cast(pl.Int64).alias("_kid"), pl.exclude("_k0")
        ).collect(engine="in-memory")
    ev = ev.filter(pl.all_horizontal(keep))
    return ev.join(espine.ids, on=kcols, how="inner", maintain_order="left").drop(kcols)


def output_dtype(agg: str, value_dtype: pl.DataType, has_value: bool) -> pl.DataType:
    if agg == "latest":
        return value_dtype
    return K._out_dtype(agg, value_dtype, has_value)


@dataclass
class _EventGroup:
    events: pl.DataFrame
    prefix: dict[tuple[str, timedelta | None, bool], pl.DataFrame] = field(default_factory=dict)
    rolled: dict[tuple[str, timedelta, bool], pl.Series] = field(default_factory=dict)  # aligned with the spine
    markers: pl.DataFrame | None = None
    sorted_by: dict[str, pl.DataFrame] = field(default_factory=dict)  # events sorted by (_kid, on, _pos)
    any_late: dict[timedelta, bool] = field(default_factory=dict)
    by_et: pl.DataFrame | None = None  # all event columns in (key, et, position) order
    by_et_narrow: pl.DataFrame | None = None  # `_kid`, `_et`, `_vis`, `_v` in that order
    small: dict[tuple[timedelta, int], np.ndarray] = field(default_factory=dict)  # spine rows of small keys
    big: dict[tuple[Any, ...], tuple[EntityFeatures, _EventGroup]] = field(default_factory=dict)  # the other keys
    starts: pl.DataFrame | None = None  # first position of each key in `by_et`
    best: dict[str, tuple[pl.DataFrame, pl.DataFrame]] = field(default_factory=dict)


@dataclass
class _Direct:
    """Results of one windowed feature for the spine rows of small keys (`small`), and the event group
    they were computed from (the other keys are computed from the same rows, see `_big_keys_part`)."""

    value: pl.Series
    n: pl.Series
    small: pl.Series
    group: _EventGroup
    value_dtype: pl.DataType
    others: pl.Series  # the rows computed apart: a superset of ~small, shared by features that share `part`
    part: tuple[Any, ...]


def _skips_nulls(feature: FeatureSpec) -> bool:
    """Rows whose value is null are not seen by the feature (every aggregation of a column but `latest`)."""
    return feature.column is not None and (feature.agg != "latest" or feature.skip_nulls)


def _value_dtype_for_sum(dtype: pl.DataType) -> pl.DataType:
    return pl.Int64() if (dtype.is_integer() or dtype == pl.Boolean) else pl.Float64()


class EntityFeatures:
    """Computes the features (and labels) of one entity over one spine, sharing sorted tables."""

    def __init__(self, defs: Definitions, spine: pl.DataFrame, spine_keys: Sequence[str], *, es: EntitySpine | None = None) -> None:
        self.defs = defs
        self.es = es if es is not None else entity_spine(spine, spine_keys)
        self.groups: dict[tuple[Any, ...], _EventGroup] = {}
        self._count_columns: dict[tuple[str, str, str | None], str] = {}
        # (feature, window) -> results of the rows of small keys (`_Direct`)
        self.direct: dict[tuple[str, timedelta], _Direct] = {}

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
            # ties ordered by input position: deterministic float sums
            cols = ["_kid", on, "_pos", "_v", (pl.col("_vis") - pl.col("_et")).alias("_late")]
            if on == "_et":
                group.sorted_by[on] = self._by_et(group).select(cols)
            else:
                group.sorted_by[on] = K.sort_by_key_time(group.events.select(cols), on)
        ev = group.sorted_by[on]
        if window is not None:
            if window not in group.any_late:
                late = pl.col("_vis") - pl.col("_et")
                group.any_late[window] = bool(group.events.select((late >= pl.lit(window)).any()).item())
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
            ranked = next(iter(group.best.values()))[0] if group.best else K.rank_events(group.events)
            group.best[pick] = (ranked, K.running_best(ranked, pick))
        return group.best[pick]

    def _by_et(self, group: _EventGroup, narrow: bool = False) -> pl.DataFrame:
        """The group's events in (key, event time, input position) order (sorted once); `narrow`: only
        `_kid`, `_et`, `_vis`, `_v` are needed (gathering 7 columns of 10M rows costs 60% more than 4)."""
        if group.by_et is not None:
            return group.by_et
        if narrow:
            if group.by_et_narrow is None:
                group.by_et_narrow = K.sort_by_key_time(group.events, "_et", ["_kid", "_et", "_vis", "_v"])
            return group.by_et_narrow
        group.by_et = K.sort_by_key_time(group.events, "_et")
        group.by_et_narrow = None
        return group.by_et

    def _feature_group(self, feature: FeatureSpec, source_frame: pl.DataFrame) -> _EventGroup:
        assert feature.source and feature.entity and feature.agg
        skip = _skips_nulls(feature)
        if skip and feature.column in source_frame.columns and source_frame.get_column(feature.column).null_count() == 0:
            skip = False  # nothing to skip: share the events of the features that keep nulls
        source = self.defs.sources[feature.source]
        return self._group(source_frame, source, feature.entity, feature.column, feature.where, skip, False)

    def _base_group(self, feature: FeatureSpec, source_frame: pl.DataFrame) -> _EventGroup:
        """Every row of the feature's source, entity and `where` (null values kept), with its column as
        `_v` (a row count borrows another feature's column): one group serves all windows over those rows."""
        assert feature.source and feature.entity
        column = feature.column or self._count_columns.get((feature.source, feature.entity, feature.where))
        source = self.defs.sources[feature.source]
        return self._group(source_frame, source, feature.entity, column, feature.where, False, False)

    def feature(self, feature: FeatureSpec, source_frame: pl.DataFrame) -> tuple[pl.Series, pl.Series, pl.DataType]:
        """(value, n) aligned with `self.es.sorted`, and the output dtype."""
        assert feature.source and feature.entity and feature.agg
        defs = self.defs
        inclusive = defs.feature_cutoff(feature) is Cutoff.INCLUSIVE
        agg = feature.agg
        has_value = feature.column is not None
        window = feature.window
        direct = self.direct.get((feature.name, window)) if window is not None else None
        if direct is not None:
            d_value, d_n, small = direct.value, direct.n, direct.small
            dtype = output_dtype(agg, direct.value_dtype, has_value)
            if bool(small.all()):
                return d_value, d_n.cast(pl.Int64), dtype
            # the other keys: the usual kernels over only their events and spine rows (all is per key)
            assert window is not None
            child, child_group = self._big_keys_part(direct.group, direct.part, direct.others, _skips_nulls(feature))
            b_value, b_n, dtype = child._feature_path(feature, child_group, inclusive, dtype)
            # the child's rows are `others`, in this entity's order: its row of each of ours, null for the rest
            others = direct.others
            child_row = pl.select(pl.when(others).then(others.cast(pl.Int64).cum_sum() - 1)).to_series()
            value = pl.select(pl.when(small).then(d_value.cast(dtype)).otherwise(b_value.cast(dtype).gather(child_row))).to_series()
            n = pl.select(pl.when(small).then(d_n).otherwise(b_n.gather(child_row))).to_series().cast(pl.Int64)
            return value, n, dtype
        group = self._feature_group(feature, source_frame)
        dtype = output_dtype(agg, group.events.schema["_v"], has_value)
        return self._feature_path(feature, group, inclusive, dtype)

    def _big_keys_part(self, group: _EventGroup, part: tuple[Any, ...], others: pl.Series, skip: bool) -> tuple[EntityFeatures, _EventGroup]:
        """A view of this entity restricted to the spine rows `others` and the events of their keys (without
        the rows of null value when `skip`). Results are per key, so extra rows change nothing."""
        if (*part, skip) not in group.big:
            rows = self.es.sorted.filter(others)
            child = EntityFeatures(self.defs, rows, (), es=EntitySpine(rows, self.es.ids, self.es.key_dtypes))
            events = group.events.join(rows.select("_kid").unique(), on="_kid", how="semi", maintain_order="left")
            if skip:
                events = events.filter(pl.col("_v").is_not_null())
            group.big[(*part, skip)] = (child, _EventGroup(events))
        return group.big[(*part, skip)]

    def _feature_path(
        self, feature: FeatureSpec, group: _EventGroup, inclusive: bool, dtype: pl.DataType
    ) -> tuple[pl.Series, pl.Series, pl.DataType]:
        defs = self.defs
        agg = feature.agg
        assert agg is not None
        has_value = feature.column is not None
        ev = group.events
        value_dtype = ev.schema["_v"]
        sp = self.es.sorted
        window, hop = feature.window, feature.hop
        t = pl.col(K.T)

        if _rolls(agg, window, hop, value_dtype):
            condition = K.window_condition(defs.feature_cutoff(feature), window, hop)
            assert window is not None
            return self._windowed(group, agg, window, inclusive, condition, dtype)
        if agg in CUMULATIVE and hop is None:
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
        if agg in ("min", "max") and value_dtype.is_numeric() and window is None:
            return self._running_extreme(group, agg, inclusive, dtype)
        if window is not None:
            res = self._window_aggregate(group, sp, window, hop, inclusive, condition, agg, has_value, feature.k, feature.ddof)
        else:
            res = K.pairs(sp, ev, ["_kid"], agg, condition=condition, has_value=has_value, k=feature.k, ddof=feature.ddof)
        aligned = sp.select(K.ROW).join(res, on=K.ROW, how="left", maintain_order="left")
        return aligned.get_column(K.VAL), aligned.get_column(K.N).fill_null(0), dtype

    def _window_aggregate(
        self,
        group: _EventGroup,
        rows: pl.DataFrame,
        window: timedelta,
        hop: timedelta | None,
        inclusive: bool,
        condition: K.CondBuilder,
        agg: str,
        has_value: bool,
        k: int | None = None,
        ddof: int = 1,
        many: Sequence[tuple[str, str, bool, int | None, int]] | None = None,
    ) -> pl.DataFrame:
        """`agg` (or `many` aggregations, `(alias, agg, has_value, k, ddof)`, each giving `<alias>_v`,
        `<alias>_n`) over the (spine row, event) pairs of `rows` whose event is in the window (visibility applied).

        Only the events in the window's event-time range are visited: with the key's events sorted by event
        time, the range is positions [count(et before start), count(et before t)), read from the running
        count table with two as-of lookups, so the cost is the number of in-window events, not the key's
        whole history. Pairs are built and aggregated chunk by chunk, so memory stays bounded.
        """
        table = self._prefix(group, "_et", None, False)  # rows in (key, et, position) order, like `by_et`
        by_et = self._by_et(group)
        if group.starts is None:
            group.starts = (
                by_et.select("_kid").with_row_index("_g").group_by("_kid").agg(pl.col("_g").min().cast(pl.Int64).alias("_start"))
            )
        starts = group.starts
        t = pl.col(K.T)
        lo = K.lookup(rows, K.window_start(t, window, hop), table, "_et", inclusive).get_column("_cn").fill_null(0)
        hi = K.lookup(rows, t, table, "_et", inclusive).get_column("_cn").fill_null(0)
        spans = rows.select(K.ROW, "_kid", K.T).with_columns(lo.alias("_lo"), hi.alias("_hi"))
        spans = spans.join(starts, on="_kid", how="left", maintain_order="left").filter(pl.col("_hi") > pl.col("_lo"))
        events = by_et.drop("_kid")
        parts = []
        sizes = (spans.get_column("_hi") - spans.get_column("_lo")).cum_sum()
        chunk_id = (sizes // K.PAIRS_PER_CHUNK).alias("_chunk")
        for part in spans.with_columns(chunk_id).partition_by("_chunk", maintain_order=True):
            idx = part.select(
                K.ROW, K.T, pl.int_ranges(pl.col("_start") + pl.col("_lo"), pl.col("_start") + pl.col("_hi")).alias("_g")
            ).explode("_g")
            joined = pl.concat([idx, events[idx.get_column("_g")]], how="horizontal")
            joined = joined.filter(condition(pl.col(K.T))).sort([pl.col(K.ROW), *K.order_keys()])
            parts.append(_aggregate(joined, agg, has_value, k, ddof, many))
        if not parts:
            empty = pl.concat([rows.select(K.ROW, K.T).clear(), events.clear()], how="horizontal")
            return _aggregate(empty, agg, has_value, k, ddof, many)
        return pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]

    def _running_extreme(self, group: _EventGroup, agg: str, inclusive: bool, dtype: pl.DataType) -> tuple[pl.Series, pl.Series, pl.DataType]:
        """min / max without a window: a running extreme per key in visibility order, one as-of lookup."""
        running = pl.col("_v").cum_max() if agg == "max" else pl.col("_v").cum_min()
        table = group.events.sort(["_kid", "_vis"]).select("_kid", "_vis", running.over("_kid").alias("_x"))
        hit = K.lookup(self.es.sorted, pl.col(K.T), table, "_vis", inclusive)
        n = hit.get_column("_x").is_not_null().cast(pl.Int64)
        return hit.get_column("_x"), n, dtype

    def precompute(self, features: Sequence[FeatureSpec], frames: Mapping[str, pl.DataFrame]) -> None:
        """Compute the windowed features of small keys (one enumeration per event group and window) and the
        rolling columns of the other keys' min/max windows in one pass (Polars evaluates the expressions of
        one `select` in parallel)."""
        wanted: dict[int, tuple[_EventGroup, set[tuple[str, timedelta, bool]]]] = {}
        def windowed(f: FeatureSpec) -> bool:
            return bool(f.window is not None and f.hop is None and f.agg not in (None, "latest", "last", "time_since_last")
                        and f.source and f.entity and f.source in frames)

        def numpy_path(f: FeatureSpec) -> bool:
            frame = frames[f.source or ""]
            return W.supported(f.agg or "", frame.schema[f.column] if f.column in frame.columns else pl.Null())

        for f in features:  # a windowed row count shares the enumeration of a numeric column of the same rows
            if windowed(f) and f.column and numpy_path(f):
                self._count_columns.setdefault((f.source or "", f.entity or "", f.where), f.column)
        by_window: dict[tuple[int, timedelta, bool], tuple[_EventGroup, list[FeatureSpec]]] = {}
        direct: dict[tuple[int, bool], tuple[_EventGroup, list[FeatureSpec]]] = {}
        for f in features:
            if windowed(f):
                assert f.window is not None
                inclusive = self.defs.feature_cutoff(f) is Cutoff.INCLUSIVE
                if numpy_path(f):
                    group = self._base_group(f, frames[f.source or ""])
                    direct.setdefault((id(group), inclusive), (group, []))[1].append(f)
                else:
                    group = self._feature_group(f, frames[f.source or ""])
                    by_window.setdefault((id(group), f.window, inclusive), (group, []))[1].append(f)
        for (_, inclusive), (group, feats) in direct.items():
            self._direct_windows(group, inclusive, feats)
        for (_, window, inclusive), (group, feats) in by_window.items():
            self._window_pairs_if_cheap(group, window, inclusive, feats)
        for f in features:
            if not (f.source and f.entity and f.agg) or f.source not in frames:
                continue
            if f.window is not None and (f.name, f.window) in self.direct:
                continue  # small keys are done; any other keys are computed apart (EntityFeatures._big_keys_part)
            group = self._feature_group(f, frames[f.source])
            if _rolls(f.agg, f.window, f.hop, group.events.schema["_v"]):
                assert f.window is not None
                inclusive = self.defs.feature_cutoff(f) is Cutoff.INCLUSIVE
                specs = wanted.setdefault(id(group), (group, set()))[1]
                specs.update({("count", f.window, inclusive), ("max_vis", f.window, inclusive), (f.agg, f.window, inclusive)})
        for group, specs in wanted.values():
            self._rolling(group, sorted(specs, key=str))
        for group in self.groups.values():  # read only by the direct windows, all computed by now
            group.by_et_narrow = None

    def _small_rows(self, group: _EventGroup, window: timedelta, limit: int) -> np.ndarray:
        """Spine rows (of `self.es.sorted`) whose key never has more than `limit` events
        inside one window (a bound on the pairs of any spine row of that key). Decided from the key's own
        events only, so a row takes the same path in a backfill, in `explain` (one spine row) and in every
        partition: float sums are bit-identical across them."""
        if (window, limit) not in group.small:
            by_et = self._by_et(group, narrow=True)
            kid = by_et.get_column("_kid").to_numpy()
            big = W.big_keys(kid, _us(by_et.get_column("_et")), _window_us(window), limit)
            group.small[(window, limit)] = W.small_rows(self.es.sorted.get_column("_kid").to_numpy(), big)
        return group.small[(window, limit)]

    def _direct_windows(self, group: _EventGroup, inclusive: bool, feats: Sequence[FeatureSpec]) -> None:
        """count/sum/mean/min/max of every window of `feats` (one base group: all rows, null values kept) for
        the spine rows whose key is small for that window (engine/windows.py): one enumeration per window."""
        sp = self.es.sorted
        m = sp.height
        if m == 0 or group.events.height == 0:
            return
        by_et = self._by_et(group, narrow=True)
        v = by_et.get_column("_v")
        reads_values = any(f.column is not None for f in feats)
        values = v.fill_null(0).to_numpy() if reads_values and v.dtype != pl.Null else None
        valid = v.is_not_null().to_numpy() if values is not None and v.null_count() else None
        et, vis = _us(by_et.get_column("_et")), _us(by_et.get_column("_vis"))
        kid_e = by_et.get_column("_kid").to_numpy()
        t_s = _us(sp.get_column(K.T))
        kid_s = sp.get_column("_kid").to_numpy()
        finder = W.PositionFinder.packed(kid_e, et, kid_s)
        if finder is None:  # keys x times do not fit in 62 bits: as-of lookups on a global position table
            starts = np.searchsorted(kid_e, kid_s, side="left")
            ends = by_et.select("_kid", "_et", pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_cn"))

        def position(window: timedelta | None) -> np.ndarray:
            """Per spine row, one past the last event of its key with event time before t - window (at or
            before, inclusive), as a position in `by_et`."""
            if finder is not None:
                return finder.find(t_s - (_window_us(window) if window else 0), inclusive)
            at = pl.col(K.T) - pl.lit(window) if window else pl.col(K.T)
            found = K.lookup(sp, at, ends, "_et", inclusive).get_column("_cn").fill_null(-1).to_numpy()
            return np.where(found < 0, starts, found)

        hi = position(None)
        aggs = [
            W.WindowAgg(f"_f{i}", f.agg or "", _window_us(f.window), f.column is not None)
            for i, f in enumerate(feats)
        ]
        out = W.empty_outputs(aggs, m, values.dtype if values is not None else np.dtype(np.int64))
        events = W.Events(vis, values, valid)
        small_by_window = {}
        for window in sorted({f.window for f in feats if f.window is not None}, reverse=True):
            small = self._small_rows(group, window, DIRECT_WINDOW_EVENTS)
            small_by_window[window] = small
            rows = np.flatnonzero(small)
            if rows.size:
                lo = position(window)
                todo = [a for a in aggs if a.window_us == _window_us(window)]
                W.compute(t_s[rows], lo[rows], hi[rows], events, todo, inclusive, out, rows)
        # big for a window implies big for every wider one: the rows not small for the widest window are
        # every row that any of these features computes apart, so one child serves them all
        others = pl.Series(~small_by_window[max(small_by_window)])
        for f, wa in zip(feats, aggs, strict=True):
            assert f.window is not None
            small_s = pl.Series(small_by_window[f.window])
            if small_s.any():
                value, n = W.to_series(*out[wa.alias])
                dtype = v.dtype if f.column is not None else pl.Null()
                self.direct[(f.name, f.window)] = _Direct(value, n, small_s, group, dtype, others, ("direct", inclusive))

    def _window_pairs_if_cheap(self, group: _EventGroup, window: timedelta, inclusive: bool, feats: Sequence[FeatureSpec]) -> None:
        """Spine rows of small keys (see `_small_keys`) get every windowed aggregation of `window` from one
        enumeration of their (spine row, in-window event) pairs and one group-by: cheaper than prefix tables
        and rolling passes when windows hold few events, and exact by construction."""
        sp = self.es.sorted
        small = pl.Series(self._small_rows(group, window, SMALL_KEY_EVENTS))
        if not small.any():
            return
        condition = K.window_condition(Cutoff.INCLUSIVE if inclusive else Cutoff.EXCLUSIVE, window, None)
        many = [(f"_f{i}", f.agg or "", f.column is not None, f.k, f.ddof) for i, f in enumerate(feats)]
        res = self._window_aggregate(group, sp.filter(small), window, None, inclusive, condition, "", False, many=many)
        aligned = sp.select(K.ROW).join(res, on=K.ROW, how="left", maintain_order="left")
        for i, f in enumerate(feats):
            self.direct[(f.name, window)] = _Direct(
                aligned.get_column(f"_f{i}_v"), aligned.get_column(f"_f{i}_n").fill_null(0), small, group,
                group.events.schema["_v"], ~small, ("pairs", window, inclusive),
            )

    def _rolling(self, group: _EventGroup, specs: Sequence[tuple[str, timedelta, bool]]) -> None:
        missing = [sp for sp in specs if sp not in group.rolled]
        if not missing:
            return
        sp = self.es.sorted
        if group.markers is None:
            group.markers = _marker_frame(sp, group.events, pl.col(K.T))
        exprs = []
        for i, (agg, window, inclusive) in enumerate(missing):
            closed: Literal["left", "right"] = "right" if inclusive else "left"
            exprs.append(K.rolling(agg, "_time", window, closed).over("_kid").alias(f"_x{i}"))
        at_markers = group.markers.select(K.ROW, *exprs).filter(pl.col(K.ROW).is_not_null())
        aligned = sp.select(K.ROW).join(at_markers, on=K.ROW, how="left", maintain_order="left")
        for i, spec in enumerate(missing):
            group.rolled[spec] = aligned.get_column(f"_x{i}")

    def _windowed(
        self,
        group: _EventGroup,
        agg: str,
        window: timedelta,
        inclusive: bool,
        condition: K.CondBuilder,
        dtype: pl.DataType,
    ) -> tuple[pl.Series, pl.Series, pl.DataType]:
        """min and max over a window.

        A rolling extreme over event time (the spine instants inserted as markers) is exact for every
        spine row with no *pending* row: a row whose event time is inside the window but which is not yet
        visible at t. The rolling max of `_vis` over the same window tells exactly which spine rows have
        one (max `_vis` >= t, or > t with an inclusive cutoff); those are recomputed by the pairs kernel.
        (Sums are not rolled: a rolling sum subtracts the rows leaving the window and keeps their
        rounding error; compensated prefix sums do not.)
        """
        sp = self.es.sorted
        self._rolling(group, [("count", window, inclusive), ("max_vis", window, inclusive), (agg, window, inclusive)])
        n = group.rolled[("count", window, inclusive)].fill_null(0).cast(pl.Int64)
        value = group.rolled[(agg, window, inclusive)]
        max_vis = group.rolled[("max_vis", window, inclusive)]
        t_s = sp.get_column(K.T)
        pending = (max_vis > t_s if inclusive else max_vis >= t_s).fill_null(False)
        if pending.any():  # exact for these rows, visiting only their windows' events
            res = self._window_aggregate(group, sp.filter(pending), window, None, inclusive, condition, agg, True)
            fixed = sp.select(K.ROW).join(res, on=K.ROW, how="left", maintain_order="left")
            value = pl.select(pl.when(pending).then(fixed.get_column(K.VAL)).otherwise(value)).to_series()
            n = pl.select(pl.when(pending).then(fixed.get_column(K.N).fill_null(0)).otherwise(n)).to_series()
        value = pl.select(pl.when(n > 0).then(value).otherwise(None)).to_series()
        return value.cast(dtype), n, dtype

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


def _aggregate(
    joined: pl.DataFrame, agg: str, has_value: bool, k: int | None, ddof: int,
    many: Sequence[tuple[str, str, bool, int | None, int]] | None,
) -> pl.DataFrame:
    if many is None:
        return K.aggregate_pairs(joined, agg, has_value, k, ddof)
    exprs: list[pl.Expr] = []
    for alias, a, hv, kk, dd in many:
        val, n = K._pair_aggs(a, hv, kk, dd)
        exprs += [val.alias(f"{alias}_v"), n.alias(f"{alias}_n")]
    return joined.group_by(K.ROW, maintain_order=True).agg(exprs)


# a key whose events never number more than this inside one window gets its windows by direct enumeration:
# count/sum/mean/min/max in numpy (engine/windows.py), the other aggregations by a Polars group-by
DIRECT_WINDOW_EVENTS = 256
SMALL_KEY_EVENTS = 64


def _us(series: pl.Series) -> np.ndarray:
    """A UTC microsecond datetime series as int64 microseconds."""
    return series.to_physical().to_numpy()


def _window_us(window: timedelta | None) -> int:
    assert window is not None
    return window // timedelta(microseconds=1)


def _rolls(agg: str, window: timedelta | None, hop: timedelta | None, value_dtype: pl.DataType) -> bool:
    """Windowed aggregations computed by rolling over event time (see EntityFeatures._windowed)."""
    if window is None or hop is not None:
        return False
    return agg in ("min", "max") and value_dtype.is_numeric()


def _marker_frame(sp: pl.DataFrame, ev: pl.DataFrame, at: pl.Expr) -> pl.DataFrame:
    """Events (by event time) and the spine instants `at` as null-valued markers, sorted by key and time."""
    markers = sp.select(
        "_kid",
        at.alias("_time"),
        pl.lit(None, ev.schema["_v"]).alias("_v"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("_vis"),
        pl.lit(None, pl.Int64).alias("_one"),
        pl.col(K.ROW),
    )
    events = ev.select(
        "_kid", pl.col("_et").alias("_time"), "_v", "_vis", pl.lit(1, pl.Int64).alias("_one"),
        pl.lit(None, pl.Int64).alias(K.ROW),
    )
    return pl.concat([events, markers], how="vertical").sort(["_kid", "_time"])


def finish(value: pl.Series, n: pl.Series, name: str, agg: str, default: Any, dtype: pl.DataType) -> pl.Series:
    """Empty windows: 0 for count/count_distinct/sum, else null; then `default` when empty."""
    frame = pl.DataFrame({"_v": value, "_n": n})
    val = pl.col("_v")
    empty = K.empty_value(agg, dtype)
    if empty is not None:
        val = pl.when(pl.col("_n") == 0).then(pl.lit(empty).cast(dtype)).otherwise(val)
    if default is not None:
        check_default(name, default, dtype)
        val = pl.when(pl.col("_n") == 0).then(pl.lit(default).cast(dtype, strict=False)).otherwise(val)
    return frame.select(val.cast(dtype, strict=False).alias(name)).to_series()


def check_default(name: str, default: Any, dtype: pl.DataType) -> None:
    """A `default` must be a value of the feature's type: 2.5 for an integer sum would silently become 2."""
    try:
        cast = pl.Series([default]).cast(dtype, strict=True)
        same = cast.to_list()[0] == default
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        same = False
    if not same:
        raise DataError(
            Diagnostic(
                f"default {default!r} of feature '{name}' is not a {dtype} value, the type of its result",
                hint=f"give a default of type {dtype}, or cast the source column (e.g. to a float for a float sum)",
            )
        )


def fill_missing_rows(spine: pl.DataFrame, block: pl.DataFrame, empties: dict[str, tuple[str, Any, pl.DataType]]) -> pl.DataFrame:
    """Every spine row, in spine order: `_row` + the block's columns. Rows absent from the block (no time
    or no full key) see no rows: `default`, else 0 for count/count_distinct/sum, else null."""
    # `_row` numbers the spine rows 0..n-1 in spine order: place the block's rows by position, not by a join
    at = np.full(spine.height, -1, dtype=np.int64)
    at[block.get_column(K.ROW).to_numpy()] = np.arange(block.height, dtype=np.int64)
    where = pl.select(pl.when(pl.Series(at) >= 0).then(pl.Series(at))).to_series()
    full = block.with_columns(pl.lit(True).alias("_present")).select(pl.all().gather(where))
    full = full.with_columns(spine.get_column(K.ROW))
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
