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


def _differs(a: pl.Series, b: pl.Series, rtol: float) -> pl.Series:
    """Per row: the two values differ (numbers beyond `rtol` relative; both null is equal). Raises
    `pl.exceptions.PolarsError` when the types do not compare."""
    a, b = _norm(a), _norm(b)
    both_null = a.is_null() & b.is_null()
    if a.dtype.is_numeric() and b.dtype.is_numeric():
        x, y = a.cast(pl.Float64), b.cast(pl.Float64)
        scale = pl.DataFrame({"x": x.abs(), "y": y.abs()}).max_horizontal()
        return ~(((x - y).abs() <= scale * rtol).fill_null(False) | both_null)
    return ~((a == b.cast(a.dtype)).fill_null(False) | both_null)


def compare_frames(ref: pl.DataFrame, other: pl.DataFrame, rtol: float = RTOL) -> list[str]:
    """Human-readable disagreements (empty when the frames agree)."""
    problems: list[str] = []
    if ref.columns != other.columns:
        problems.append(f"columns differ: {ref.columns} vs {other.columns}")
    if ref.height != other.height:
        problems.append(f"row counts differ: {ref.height} vs {other.height}")
        return problems
    for c in [c for c in ref.columns if c in other.columns]:
        a, b = ref.get_column(c), other.get_column(c)
        try:
            bad = _differs(a, b, rtol)
        except pl.exceptions.PolarsError:
            problems.append(f"{c}: types {a.dtype} and {b.dtype} do not compare")
            continue
        n = int(bad.sum())
        if n:
            i = int(bad.arg_true()[0])
            problems.append(f"{c}: {n} of {ref.height} rows differ (first at row {i}: {_norm(a)[i]!r} vs {_norm(b)[i]!r})")
    return problems


def rows_differing(ref: pl.DataFrame, other: pl.DataFrame, rtol: float = RTOL) -> int:
    """How many rows of two frames with the same columns and height differ in any column."""
    if ref.columns != other.columns or ref.height != other.height:
        raise ValueError(f"shapes differ: {ref.columns} x {ref.height} vs {other.columns} x {other.height}")
    bad = pl.Series([False] * ref.height)
    for c in ref.columns:
        bad = bad | _differs(ref.get_column(c), other.get_column(c), rtol)
    return int(bad.sum())
