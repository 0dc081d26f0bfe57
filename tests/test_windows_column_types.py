"""Windowed counts of columns of any type on the numpy window path (engine/direct.py `direct_windows`).

Found in review of that path: a count of a Datetime/Date/Categorical column crashed (the values were
converted although a count never reads them), and a count of a Null-typed column (an all-null column read
from NDJSON or Parquet) counted rows instead of non-null values (SPEC 3: COUNT(col)).
"""

from __future__ import annotations

import polars as pl
import pytest

from fpipe.engine.build import build_frame
from strategies import at, feature, make_defs, mins

UTC_US = pl.Datetime("us", "UTC")


def _source(column: pl.Series) -> pl.DataFrame:
    times = [at(0), at(1), at(2)]
    return pl.DataFrame(
        {"uid": [1, 1, 1], "k2": ["p"] * 3, "ts": times, "avail": times},
        schema={"uid": pl.Int64, "k2": pl.String, "ts": UTC_US, "avail": UTC_US},
    ).with_columns(column.alias("c"))


def _build(feats: list, src: pl.DataFrame) -> pl.DataFrame:  # type: ignore[type-arg]
    spine = pl.DataFrame({"uid": [1], "k2": ["p"], "t": [at(5)]}, schema={"uid": pl.Int64, "k2": pl.String, "t": UTC_US})
    return build_frame(make_defs(feats), "ts", sources={"ev": src, "cb": src.clear()}, spine=spine).frame


@pytest.mark.parametrize(
    "column",
    [
        pl.Series([None, at(1), at(2)], dtype=UTC_US),
        pl.Series([None, at(1).date(), at(2).date()], dtype=pl.Date),
        pl.Series([None, "a", "b"], dtype=pl.Categorical),
    ],
    ids=["datetime", "date", "categorical"],
)
def test_windowed_count_of_a_non_numeric_column(column: pl.Series) -> None:
    out = _build([feature("n", "count", "c", window=mins(10))], _source(column))
    assert out.get_column("n").to_list() == [2]


def test_windowed_count_of_a_null_typed_column_counts_no_values() -> None:
    src = _source(pl.Series([None, None, None], dtype=pl.Null))
    out = _build([feature("n", "count", "c", window=mins(10)), feature("rows", "count", window=mins(10)),
                  feature("n_all", "count", "c")], src)
    assert out.get_column("rows").to_list() == [3]
    assert out.get_column("n_all").to_list() == [0]  # no window: 0 (correct)
    assert out.get_column("n").to_list() == [0]  # with a window too (it used to give 3, the row count)
