"""Do two training sets agree? Same columns, same rows in the same order, equal values (floats within a
relative tolerance; NaN read as null). Never de-duplicates or sorts before comparing."""

from __future__ import annotations

import polars as pl

RTOL = 1e-9


def _norm(s: pl.Series) -> pl.Series:
    if s.dtype.is_float():
        return s.cast(pl.Float64).fill_nan(None)
    if isinstance(s.dtype, pl.Datetime):
        return s.cast(pl.Datetime("us", "UTC"))
    return s


def compare_frames(ref: pl.DataFrame, other: pl.DataFrame, rtol: float = RTOL) -> list[str]:
    """Human-readable disagreements (empty when the frames agree)."""
    problems: list[str] = []
    if ref.columns != other.columns:
        problems.append(f"columns differ: {ref.columns} vs {other.columns}")
    if ref.height != other.height:
        problems.append(f"row counts differ: {ref.height} vs {other.height}")
        return problems
    for c in [c for c in ref.columns if c in other.columns]:
        a, b = _norm(ref.get_column(c)), _norm(other.get_column(c))
        both_null = a.is_null() & b.is_null()
        if a.dtype.is_numeric() and b.dtype.is_numeric():
            x, y = a.cast(pl.Float64), b.cast(pl.Float64)
            scale = pl.DataFrame({"x": x.abs(), "y": y.abs()}).max_horizontal()
            close = ((x - y).abs() <= scale * rtol).fill_null(False)
            bad = ~(close | both_null)
        else:
            try:
                b = b.cast(a.dtype)
            except pl.exceptions.PolarsError:
                problems.append(f"{c}: types {a.dtype} and {b.dtype} do not compare")
                continue
            bad = ~((a == b).fill_null(False) | both_null)
        n = int(bad.sum())
        if n:
            i = int(bad.arg_true()[0])
            problems.append(f"{c}: {n} of {ref.height} rows differ (first at row {i}: {a[i]!r} vs {b[i]!r})")
    return problems
