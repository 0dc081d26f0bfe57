"""Finishing a feature or label column: output types, empty windows, `default`, declared `dtype`,
spine rows without a time or a full key, and label censoring."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from fpipe.engine import kernels as K
from fpipe.errors import DataError, Diagnostic
from fpipe.spec.model import LabelSpec, SourceSpec


def output_dtype(agg: str, value_dtype: pl.DataType, has_value: bool) -> pl.DataType:
    """The type of a feature or label column: `latest` keeps the value's type, see `kernels.agg_dtype`."""
    if agg == "latest":
        return value_dtype
    return K.agg_dtype(agg, value_dtype, has_value)


def finish(value: pl.Series, n: pl.Series, name: str, agg: str, default: Any, dtype: pl.DataType) -> pl.Series:
    """Empty windows: 0 for count/count_distinct/sum, else null; then `default` when empty. A float min/max of
    zero is +0.0: of -0.0 and 0.0 (equal) the kernels keep different ones (the rolling extreme the first in
    event-time order, numpy's reduction another), so a key's bytes would depend on the path it takes."""
    frame = pl.DataFrame({"_v": value, "_n": n})
    val = pl.col("_v")
    if agg in ("min", "max") and dtype.is_float():
        val = pl.when(val == 0).then(pl.lit(0.0, dtype)).otherwise(val)
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
    if block.height == spine.height:  # every spine row is in the block (`_row` is unique): a permutation, nothing to fill
        return block.select(pl.lit(spine.get_column(K.ROW)), pl.exclude(K.ROW).gather(pl.Series(at)))
    # a gather by indices without nulls (absent rows read row 0) masked by one when/then, per column in one
    # select (a gather by indices with nulls was slower): 1M rows x 15 columns in 0.14-0.18 s against
    # 0.16-0.24 s for gathering every column before masking (5 runs each), and only a column or two of
    # gathered temporaries at a time (all 15 gathered, then masked: the process's RSS at
    # this step was 1503 MB at M for bench_windows, 1354 MB now; one sampled run each)
    assert set(block.columns) - {K.ROW} <= set(empties), "every column needs its empty value: row 0 would leak"
    if block.height == 0:
        block = block.clear(1)  # a row 0 of nulls for the gather to read (every row is then masked)
    present = pl.lit(pl.Series("_present", at >= 0))
    idx = pl.Series(np.maximum(at, 0))
    exprs = [pl.lit(spine.get_column(K.ROW))]
    for name, (agg, default, dtype) in empties.items():  # every column of the block but `_row`
        fill = default if default is not None else K.empty_value(agg, dtype)
        kept = pl.when(present).then(pl.col(name).gather(idx))  # absent rows read row 0 until masked
        exprs.append((kept.otherwise(pl.lit(fill).cast(dtype, strict=False)) if fill is not None else kept).alias(name))
    return block.select(exprs)


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
    """The declared `dtype` of a feature (an unknown name leaves the column as computed)."""
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
