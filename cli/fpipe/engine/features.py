"""One feature or label over one source: choose the kernel, apply the empty-window rule and `default`.

Kernel choice (engine/kernels.py explains each algorithm and its cost):
- count, sum, mean (no hop)                     -> cumulative
- latest                                         -> ordered (max), then `ttl`
- last, time_since_last (no hop)                 -> ordered (max) over non-null rows, then the window edge
- first, time_since_first without window         -> ordered (min) over non-null rows
- everything else                                -> pairs
Labels: count, sum, mean -> cumulative over event time; everything else -> pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import polars as pl

from fpipe.engine import kernels as K
from fpipe.engine.expr import compile_expr
from fpipe.spec.model import Cutoff, Definitions, FeatureSpec, LabelSpec, SourceSpec

CUMULATIVE = {"count", "sum", "mean"}


def key_columns(n: int) -> list[str]:
    return [f"_k{i}" for i in range(n)]


def prepare_events(
    source_frame: pl.DataFrame,
    source: SourceSpec,
    entity: str,
    column: str | None,
    where: str | None,
    *,
    skip_null_values: bool,
    label: bool = False,
) -> pl.DataFrame:
    """Normalised source rows -> the kernel's event frame (`where` applied, unmatched rows removed)."""
    src_keys = list(source.keys[entity])
    frame = source_frame
    if where:
        frame = frame.filter(compile_expr(where).fill_null(False))
    kcols = key_columns(len(src_keys))
    value = pl.col(column) if column else pl.lit(None, pl.Null)
    cols = [pl.col(c).alias(k) for c, k in zip(src_keys, kcols, strict=True)]
    ev = frame.select([*cols, "_et", "_avail", "_vis", "_pos", value.alias("_v")])
    ev = ev.filter(pl.all_horizontal([pl.col(k).is_not_null() for k in kcols]))
    # labels are ground truth over event time: availability is ignored; features need a visible row
    ev = ev.filter(pl.col("_et").is_not_null()) if label else ev.filter(pl.col("_vis").is_not_null())
    if skip_null_values and column:
        ev = ev.filter(pl.col("_v").is_not_null())
    return ev


def _finish(
    spine: pl.DataFrame, result: pl.DataFrame, name: str, agg: str, default: Any, dtype: pl.DataType
) -> pl.Series:
    """Left-join the kernel result onto every spine row; empty -> 0/null, then `default` when empty."""
    full = spine.select(K.ROW).join(result, on=K.ROW, how="left", maintain_order="left")
    n = pl.col(K.N).fill_null(0)
    val = pl.col(K.VAL)
    empty = K.empty_value(agg, dtype)
    if empty is not None:
        val = pl.when(n == 0).then(pl.lit(empty).cast(dtype)).otherwise(val)
    if default is not None:
        val = pl.when(n == 0).then(pl.lit(default).cast(dtype, strict=False)).otherwise(val)
    return full.select(val.cast(dtype, strict=False).alias(name)).to_series()


def output_dtype(agg: str, value_dtype: pl.DataType, has_value: bool) -> pl.DataType:
    if agg == "latest":
        return value_dtype
    return K._out_dtype(agg, value_dtype, has_value)


def compute_feature(
    defs: Definitions,
    feature: FeatureSpec,
    spine: pl.DataFrame,
    spine_keys: Sequence[str],
    source_frame: pl.DataFrame,
) -> pl.Series:
    """Values of one (non-derived) feature for every spine row (spine: `_row`, `_t`, key columns)."""
    assert feature.source and feature.entity and feature.agg
    source = defs.sources[feature.source]
    cutoff = defs.feature_cutoff(feature)
    inclusive = cutoff is Cutoff.INCLUSIVE
    agg = feature.agg
    has_value = feature.column is not None
    skip = has_value and (agg != "latest" or feature.skip_nulls)
    if agg == "count" and not has_value:
        skip = False
    ev = prepare_events(source_frame, source, feature.entity, feature.column, feature.where, skip_null_values=skip)
    value_dtype = ev.schema["_v"]
    dtype = output_dtype(agg, value_dtype, has_value)
    kspine = _keyed_spine(spine, spine_keys, ev)
    keys = key_columns(len(spine_keys))
    window, hop = feature.window, feature.hop

    result: pl.DataFrame
    if agg in CUMULATIVE and hop is None:
        if window is not None:
            ev = ev.filter((pl.col("_vis") - pl.col("_et")) < pl.lit(window))
            minus: tuple[str, pl.Expr] | None = ("_et", pl.col(K.T) - pl.lit(window))
        else:
            minus = None
        result = K.cumulative(
            kspine, ev, keys, agg, plus=("_vis", pl.col(K.T)), minus=minus, inclusive=inclusive, has_value=has_value
        )
    elif agg == "latest" or (agg in ("last", "time_since_last") and hop is None):
        hit = K.ordered(kspine, ev, keys, pick="max", inclusive=inclusive)
        found = pl.col("_best").is_not_null()
        if agg == "latest" and feature.ttl is not None:
            found = found & ((pl.col(K.T) - pl.col("_et")) <= pl.lit(feature.ttl))
        if agg != "latest" and window is not None:
            start = pl.col(K.T) - pl.lit(window)
            found = found & (pl.col("_et") > start if inclusive else pl.col("_et") >= start)
        value = K.seconds_between(pl.col(K.T), pl.col("_et")) if agg == "time_since_last" else pl.col("_v")
        result = hit.select(
            K.ROW,
            pl.when(found).then(value).otherwise(None).alias(K.VAL),
            found.cast(pl.Int64).alias(K.N),
        )
    elif agg in ("first", "time_since_first") and window is None:
        hit = K.ordered(kspine, ev, keys, pick="min", inclusive=inclusive)
        found = pl.col("_best").is_not_null()
        value = K.seconds_between(pl.col(K.T), pl.col("_et")) if agg == "time_since_first" else pl.col("_v")
        result = hit.select(
            K.ROW, pl.when(found).then(value).otherwise(None).alias(K.VAL), found.cast(pl.Int64).alias(K.N)
        )
    else:
        result = K.pairs(
            kspine,
            ev,
            keys,
            agg,
            condition=K.window_condition(cutoff, window, hop),
            has_value=has_value,
            k=feature.k,
            ddof=feature.ddof,
        )
    series = _finish(spine, result, feature.name, agg, feature.default, dtype)
    return _cast_declared(series, feature.dtype)


def compute_label(
    defs: Definitions,
    label: LabelSpec,
    spine: pl.DataFrame,
    spine_keys: Sequence[str],
    source_frame: pl.DataFrame,
) -> pl.Series:
    """The label's aggregate over its forward window (before `expr`), for every spine row."""
    assert label.source and label.entity and label.horizon is not None
    source = defs.sources[label.source]
    cutoff = defs.label_cutoff(label)
    inclusive = cutoff is Cutoff.INCLUSIVE
    agg = label.agg
    has_value = label.column is not None
    skip = has_value and agg != "latest"
    if agg == "count" and not has_value:
        skip = False
    ev = prepare_events(source_frame, source, label.entity, label.column, label.where, skip_null_values=skip, label=True)
    dtype = output_dtype(agg, ev.schema["_v"], has_value)
    kspine = _keyed_spine(spine, spine_keys, ev)
    keys = key_columns(len(spine_keys))
    gap, horizon = label.gap, label.horizon
    if agg in CUMULATIVE:
        result = K.cumulative(
            kspine,
            ev,
            keys,
            agg,
            plus=("_et", pl.col(K.T) + pl.lit(gap + horizon)),
            minus=("_et", pl.col(K.T) + pl.lit(gap)),
            inclusive=inclusive,
            has_value=has_value,
        )
    else:
        result = K.pairs(
            kspine,
            ev,
            keys,
            "last" if agg == "latest" else agg,
            condition=K.label_condition(cutoff, gap, horizon),
            has_value=has_value,
            ddof=1,
        )
    return _finish(spine, result, label.name, agg, label.default, dtype)


def _keyed_spine(spine: pl.DataFrame, spine_keys: Sequence[str], ev: pl.DataFrame) -> pl.DataFrame:
    """Spine rows with a time and every key part, keys renamed `_k0..` and cast to the events' key types."""
    keys = key_columns(len(spine_keys))
    exprs = []
    for col, k in zip(spine_keys, keys, strict=True):
        target = ev.schema[k]
        exprs.append(pl.col(col).cast(target) if spine.schema[col] != target else pl.col(col))
    out = spine.select([K.ROW, K.T, *[e.alias(k) for e, k in zip(exprs, keys, strict=True)]])
    return out.filter(pl.col(K.T).is_not_null() & pl.all_horizontal([pl.col(k).is_not_null() for k in keys]))


_DTYPES: dict[str, pl.DataType] = {
    "int64": pl.Int64(),
    "int32": pl.Int32(),
    "float64": pl.Float64(),
    "float32": pl.Float32(),
    "string": pl.String(),
    "bool": pl.Boolean(),
    "boolean": pl.Boolean(),
}


def _cast_declared(series: pl.Series, dtype: str | None) -> pl.Series:
    if dtype is None or dtype.lower() not in _DTYPES:
        return series
    return series.cast(_DTYPES[dtype.lower()], strict=False)


def censor_mask(
    spine: pl.DataFrame, label: LabelSpec, source_frame: pl.DataFrame, source: SourceSpec
) -> pl.Series:
    """True where the label window ends after the label source's observed end (censored)."""
    assert label.horizon is not None
    observed = label.observed_until or source.observed_until
    if observed is None:
        max_et = source_frame.get_column("_et").max()
        if max_et is None:
            return pl.Series("_censored", [True] * spine.height, dtype=pl.Boolean)
        observed_expr = pl.lit(max_et)
    else:
        observed_expr = pl.lit(observed).cast(pl.Datetime("us", "UTC"))
    end = pl.col(K.T) + pl.lit(label.gap + label.horizon)
    return spine.select((end > observed_expr).fill_null(False).alias("_censored")).to_series()


def within(t: pl.Expr, delta: timedelta) -> pl.Expr:
    return t + pl.lit(delta)
