"""Windowed counts of columns of any type on the numpy window path (engine/direct.py `direct_windows`).

Found in review of that path: a count of a Datetime/Date/Categorical column crashed (the values were
converted although a count never reads them), and a count of a Null-typed column (an all-null column read
from NDJSON or Parquet) counted rows instead of non-null values (SPEC 3: COUNT(col)).
"""

from __future__ import annotations

import polars as pl
import pytest

from fpipe.engine.build import build_frame
from fpipe.spec.model import Cutoff
from strategies import at, feature, label, make_defs, mins

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


WIDE = [(pl.UInt64, 2**63 + 5), (pl.Int128, 2**70), (pl.UInt128, 2**100)]


@pytest.mark.parametrize("dtype,big", WIDE, ids=["uint64", "int128", "uint128"])
@pytest.mark.parametrize("window", [None, mins(10)], ids=["all-history", "window"])
def test_counts_and_extremes_of_ids_beyond_int64(dtype: pl.DataType, big: int, window: object) -> None:
    """Hashed ids are often UInt64 >= 2^63 (or 128-bit): counting them, counting them distinct and taking
    their min/max/latest never reads them as Int64 (review: count and count_distinct without a window, and
    a windowed count_distinct, crashed with exit 70; 128-bit windowed min/max could not go to numpy)."""
    src = _source(pl.Series([big, 7, big], dtype=dtype))
    kw = {"window": window}
    out = _build([feature("n", "count", "c", **kw), feature("d", "count_distinct", "c", **kw),
                  feature("lo", "min", "c", **kw), feature("hi", "max", "c", **kw), feature("l", "latest", "c")], src)
    assert out.row(0, named=True) == {"uid": 1, "k2": "p", "t": at(5), "n": 3, "d": 2, "lo": 7, "hi": big, "l": big}
    assert out.schema["hi"] == dtype and out.schema["l"] == dtype


@pytest.mark.parametrize("dtype,big", WIDE, ids=["uint64", "int128", "uint128"])
@pytest.mark.parametrize("agg", ["sum", "mean"])
@pytest.mark.parametrize("window", [None, mins(10)], ids=["all-history", "window"])
def test_a_sum_beyond_int64_is_one_located_error(dtype: pl.DataType, big: int, agg: str, window: object) -> None:
    """Integer sums are taken in Int64: values beyond it were a crash (no window), a wrapped sum and a mean of
    the wrapped values (UInt64 windows: 17 and 5.67 for 2^63+5, 7, 2^63+5), or null (Int128 windows)."""
    from fpipe.errors import DataError

    with pytest.raises(DataError, match=rf"feature 's': {agg} of column 'c' \({dtype}\) has values beyond Int64"):
        _build([feature("s", agg, "c", window=window)], _source(pl.Series([big, 7, big], dtype=dtype)))


@pytest.mark.parametrize("dtype", [pl.UInt64, pl.Int128, pl.UInt128])
@pytest.mark.parametrize("window", [None, mins(10)], ids=["all-history", "window"])
def test_sums_of_wide_integer_types_with_small_values(dtype: pl.DataType, window: object) -> None:
    out = _build([feature("s", "sum", "c", window=window), feature("m", "mean", "c", window=window)],
                 _source(pl.Series([5, 7, 5], dtype=dtype)))
    assert (out.item(0, "s"), out.item(0, "m")) == (17, 17 / 3)


DEC = pl.Decimal(12, 2)


@pytest.mark.parametrize("limit", [None, 0], ids=["small-keys", "every-key-big"])
def test_windowed_extremes_of_a_decimal_column(limit: int | None) -> None:
    """Review: min/max of a Decimal column over a window went to Polars' rolling_min_by, which takes integers
    and floats only (an exit-70 crash for keys past the small-key threshold); they now take the pairs."""
    from decimal import Decimal

    from test_engine_paths import small_key_events

    src = _source(pl.Series([Decimal("3.25"), Decimal("-1.50"), Decimal("7.00")], dtype=DEC))
    feats = [feature("lo", "min", "c", window=mins(10)), feature("hi", "max", "c", window=mins(4.5))]
    if limit is None:
        out = _build(feats, src)
    else:
        with small_key_events(limit):
            out = _build(feats, src)
    assert (out.item(0, "lo"), out.item(0, "hi")) == (Decimal("-1.50"), Decimal("7.00"))
    assert out.schema["lo"] == DEC and out.schema["hi"] == DEC


@pytest.mark.parametrize("agg,want", [("min", ["-1.50", "3.25"]), ("max", ["7.00", "7.00"])])
def test_label_extremes_of_a_decimal_column(agg: str, want: list[str]) -> None:
    """Same review: a label's min/max of a Decimal column crashed in the rolling kernel."""
    from decimal import Decimal

    times = [at(0), at(1), at(2), at(3)]
    src = pl.DataFrame(
        {"uid": [1] * 4, "k2": ["p"] * 4, "ts": times, "avail": times, "c": [Decimal(v) for v in ("-1.50", "7.00", "3.25", "0")]},
        schema={"uid": pl.Int64, "k2": pl.String, "ts": UTC_US, "avail": UTC_US, "c": DEC},
    )
    spine = pl.DataFrame({"uid": [1, 1], "k2": ["p", "p"], "t": [at(-1), at(0.5)]},
                         schema={"uid": pl.Int64, "k2": pl.String, "t": UTC_US})
    defs = make_defs([feature("n", "count")], label("y", agg, "c", horizon=mins(2.5)))
    out = build_frame(defs, "ts", sources={"ev": src, "cb": src.clear()}, spine=spine).frame
    # [-1, 1.5): the rows at 0 and 1; [0.5, 3): the rows at 1 and 2
    assert out.get_column("y").to_list() == [Decimal(w) for w in want]
    assert out.schema["y"] == DEC


ORDERED = {
    "string": pl.Series(["b", "a", None, "é", "Z", "ab", "a", "zz"], dtype=pl.String),
    "decimal": pl.Series([None, "1.10", "-3.00", "2.50", "-3.00", "0", "7.25", "1.10"], dtype=pl.String).cast(pl.Decimal(12, 2)),
    "boolean": pl.Series([True, False, None, True, True, False, None, True], dtype=pl.Boolean),
    "datetime": pl.Series([at(30), None, at(-50), at(4), at(900), at(4), at(-1), at(2)], dtype=UTC_US),
}


@pytest.mark.parametrize("kind", sorted(ORDERED))
def test_extremes_of_ordered_types_by_rank_match_the_pairs(kind: str) -> None:
    """min/max of strings, decimals, booleans and times over a window (with and without a hop), over all history
    and in labels are taken over the values' dense ranks (`EventGroup.ranked_values`) for keys past the
    small-key threshold; with the threshold at its default these tiny keys take the pairs instead: both agree,
    with rows visible late (pending rows) and out of order."""
    from test_engine_paths import small_key_events

    times = [at(m) for m in (0, 1, 1, 2, 3, 5, 6, 8)]
    avail = [at(m) for m in (0, 4, 1, 2, 9, 5, 6, 8)]
    src = pl.DataFrame(
        {"uid": [1, 1, 1, 2, 1, 2, 1, 1], "k2": ["p"] * 8, "ts": times, "avail": avail},
        schema={"uid": pl.Int64, "k2": pl.String, "ts": UTC_US, "avail": UTC_US},
    ).with_columns(ORDERED[kind].alias("c"))
    spine = pl.DataFrame({"uid": [1, 2] * 5, "k2": ["p"] * 10, "t": [at(m / 2) for m in range(10)]},
                         schema={"uid": pl.Int64, "k2": pl.String, "t": UTC_US})
    feats = [feature(f"{agg}_{i}", agg, "c", **kw) for agg in ("min", "max") for i, kw in enumerate(
        [{}, {"window": mins(3)}, {"window": mins(2), "hop": mins(3)}, {"window": mins(3), "cutoff": Cutoff.INCLUSIVE}])]
    outs = []
    for limit in (None, 0):
        for agg in ("min", "max"):
            defs = make_defs(feats, label("y", agg, "c", horizon=mins(3)))
            if limit is None:
                outs.append(build_frame(defs, "ts", sources={"ev": src, "cb": src.clear()}, spine=spine).frame)
            else:
                with small_key_events(limit):
                    outs.append(build_frame(defs, "ts", sources={"ev": src, "cb": src.clear()}, spine=spine).frame)
    assert outs[0].equals(outs[2]) and outs[1].equals(outs[3])
    assert outs[0].schema["min_1"] == src.schema["c"] and outs[1].schema["y"] == src.schema["c"]
    assert outs[0].get_column("max_1").null_count() < outs[0].height  # the windows are not all empty


@pytest.mark.parametrize("limit", [None, 0], ids=["small-keys", "every-key-big"])
def test_a_float_extreme_of_zero_has_one_sign_on_every_path(limit: int | None) -> None:
    """Review: of -0.0 and 0.0 at one event time the rolling kernel (big keys) kept -0.0 and the small keys'
    numpy reduction 0.0, so a key's bytes depended on the threshold. min/max of zero is now +0.0 (also labels)."""
    import math
    from contextlib import nullcontext

    from test_engine_paths import small_key_events

    src = pl.DataFrame(
        {"uid": [1, 1, 1], "k2": ["p"] * 3, "ts": [at(10), at(14), at(14)], "avail": [at(15), at(14), at(14)],
         "c": [1.2, -0.0, 0.0]},
        schema={"uid": pl.Int64, "k2": pl.String, "ts": UTC_US, "avail": UTC_US, "c": pl.Float64},
    )
    feats = [feature(f"{agg}_{i}", agg, "c", **kw) for agg in ("min", "max") for i, kw in enumerate(
        [{"window": mins(5), "hop": mins(1)}, {"window": mins(5)}])]
    spine = pl.DataFrame({"uid": [1], "k2": ["p"], "t": [at(14.5)]}, schema={"uid": pl.Int64, "k2": pl.String, "t": UTC_US})
    # the label's window (13, 14] (inclusive) holds the two zeros only, and ends at the source's last event
    lbl = label("y", "max", "c", horizon=mins(1), cutoff=Cutoff.INCLUSIVE)
    label_spine = spine.with_columns(pl.lit(at(13)).cast(UTC_US).alias("t"))
    with small_key_events(limit) if limit is not None else nullcontext():
        out = build_frame(make_defs(feats), "ts", sources={"ev": src, "cb": src.clear()}, spine=spine).frame
        labelled = build_frame(make_defs([feature("n", "count")], lbl), "ts", sources={"ev": src, "cb": src.clear()},
                               spine=label_spine).frame
    values = [out.item(0, f.name) for f in feats] + [labelled.item(0, "y")]
    assert all(v == 0.0 and math.copysign(1.0, v) == 1.0 for v in values), values
