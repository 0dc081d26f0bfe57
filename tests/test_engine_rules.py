"""The hand-computed rule cases of test_oracle.py, run through the engine (`build_frame`).

One named test per rule (`test_<rule>`); each fails if the engine drops or bends that rule.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
import pytest

from fpipe.engine.build import build_frame
from strategies import at, feature, make_defs, row, source_schema, spine_schema, srow, to_frame, values_equal
from test_oracle import CASES, RuleCase


def run_engine(c: RuleCase):  # type: ignore[no-untyped-def]
    frames = {name: to_frame(rows, c.source_schemas.get(name, source_schema())) for name, rows in c.sources.items()}
    spine = to_frame(c.spine, c.spine_schema or spine_schema()) if c.spine is not None else None
    return build_frame(c.defs, "ts", sources=frames, spine=spine)


def check_engine(c: RuleCase) -> None:
    res = run_engine(c)
    frame = res.frame
    if c.columns is not None:
        assert frame.columns == c.columns
    for col, expected in c.expect.items():
        got = frame.get_column(col).to_list()
        assert len(got) == len(expected), (col, got, expected)
        assert all(values_equal(g, e) for g, e in zip(got, expected, strict=True)), (col, got, expected)
    if c.censored_times is not None:
        time_col = c.defs.spines[c.defs.training_sets["ts"].spine].time or "t"
        got_censored = res.censored.get_column(time_col).to_list() if res.censored.height else []
        assert got_censored == c.censored_times


def _make_test(name: str) -> Callable[[], None]:
    def test() -> None:
        check_engine(CASES[name]())

    test.__name__ = f"test_{name}"
    test.__doc__ = CASES[name].__doc__
    return test


for _name in CASES:
    globals()[f"test_{_name}"] = _make_test(_name)


def test_output_types_counts_int64_means_float64_strings_stay_strings() -> None:
    defs = make_defs([
        feature("c", "count"), feature("cd", "count_distinct", "s"), feature("sn", "sum", "n"),
        feature("sx", "sum", "x"), feature("m", "mean", "n"), feature("v", "var", "x"),
        feature("ls", "latest", "s"), feature("mn", "min", "n"), feature("tl", "time_since_last"),
    ])
    res = build_frame(defs, "ts", sources={"ev": to_frame([row(1, 0, x=1.0, n=2, s="a")], source_schema()),
                                           "cb": to_frame([], source_schema())},
                      spine=to_frame([srow(1, 10)], spine_schema()))
    sch = res.frame.schema
    assert sch["c"] == pl.Int64 and sch["cd"] == pl.Int64
    assert sch["sn"].is_integer() and sch["sx"] == pl.Float64
    assert sch["m"] == pl.Float64 and sch["v"] == pl.Float64 and sch["tl"] == pl.Float64
    assert sch["ls"] == pl.String and sch["mn"].is_integer()


def test_nan_in_numeric_source_column_is_counted_as_null() -> None:
    defs = make_defs([feature("m", "mean", "x")])
    res = build_frame(defs, "ts", sources={"ev": to_frame([row(1, 0, x=float("nan")), row(1, 1, x=2.0)],
                                                          source_schema()), "cb": to_frame([], source_schema())},
                      spine=to_frame([srow(1, 10)], spine_schema()))
    assert res.frame.get_column("m").to_list() == [2.0]


def test_spine_time_unit_does_not_matter() -> None:
    """A spine time column in another unit (ms) still compares as instants."""
    defs = make_defs([feature("c", "count")])
    spine = to_frame([srow(1, 10)], spine_schema()).with_columns(pl.col("t").dt.cast_time_unit("ms"))
    res = build_frame(defs, "ts", sources={"ev": to_frame([row(1, 9)], source_schema()),
                                           "cb": to_frame([], source_schema())}, spine=spine)
    assert res.frame.get_column("c").to_list() == [1]
    assert res.frame.get_column("t").to_list() == [at(10)]


@pytest.mark.parametrize("unit", ["ns", "ms"])
def test_source_time_unit_does_not_matter(unit: str) -> None:
    defs = make_defs([feature("c", "count", )])
    src = to_frame([row(1, 9), row(1, 10)], source_schema()).with_columns(
        pl.col("ts").dt.cast_time_unit(unit), pl.col("avail").dt.cast_time_unit(unit))
    res = build_frame(defs, "ts", sources={"ev": src, "cb": to_frame([], source_schema())},
                      spine=to_frame([srow(1, 10)], spine_schema()))
    assert res.frame.get_column("c").to_list() == [1]


def test_label_only_training_set_builds() -> None:
    """A training set with a label and no features: one row per spine row with the label."""
    from strategies import label

    defs = make_defs([], label("lbl", "count"))
    res = build_frame(defs, "ts", sources={"ev": to_frame([row(1, 1), row(2, 20)], source_schema()),
                                           "cb": to_frame([], source_schema())},
                      spine=to_frame([srow(1, 0)], spine_schema()))
    assert res.frame.columns == ["uid", "k2", "t", "lbl"]
    assert res.frame.get_column("lbl").to_list() == [1]


def test_nonexistent_local_time_is_a_data_error() -> None:
    """A naive time skipped by a DST change (2024-03-10 02:30 in New York) is reported, not shifted."""
    from datetime import datetime

    from fpipe.errors import DataError

    t = datetime(2024, 3, 10, 2, 30)
    defs = make_defs([feature("c", "count")], tz="America/New_York")
    rows = [{"uid": 1, "k2": "p", "ts": t, "avail": t, "x": None, "n": None, "s": None}]
    with pytest.raises(DataError, match="does not exist"):
        build_frame(defs, "ts", sources={"ev": to_frame(rows, source_schema(naive=True)),
                                         "cb": to_frame([], source_schema(naive=True))},
                    spine=to_frame([srow(1, 10)], spine_schema()))


@pytest.mark.parametrize("present_rows", [[3, 0, 4], [], [4, 2, 0, 1, 3]], ids=["some", "none", "all"])
def test_fill_missing_rows_places_by_row_and_fills_the_absent(present_rows: list[int]) -> None:
    """Block rows go to their spine row; a spine row absent from the block (no time or no full key) gets
    the feature's default, else 0 for a count/sum, else null: never row 0's value."""
    import numpy as np

    from fpipe.engine.finish import fill_missing_rows

    spine = pl.DataFrame({"_row": np.arange(5, dtype=np.uint32)})
    block = pl.DataFrame(
        {
            "_row": pl.Series(present_rows, dtype=pl.UInt32),
            "n": pl.Series([10 + r for r in present_rows], dtype=pl.Int64),
            "lo": pl.Series([0.5 + r for r in present_rows], dtype=pl.Float64),
            "d": pl.Series([f"v{r}" for r in present_rows], dtype=pl.String),
        }
    )
    empties = {"n": ("count", None, pl.Int64()), "lo": ("min", None, pl.Float64()), "d": ("latest", "none", pl.String())}
    out = fill_missing_rows(spine, block, empties)
    assert out.columns == ["_row", "n", "lo", "d"]
    assert out.get_column("_row").to_list() == [0, 1, 2, 3, 4]
    for r in range(5):
        row = out.row(r, named=True)
        if r in present_rows:
            assert (row["n"], row["lo"], row["d"]) == (10 + r, 0.5 + r, f"v{r}")
        else:
            assert (row["n"], row["lo"], row["d"]) == (0, None, "none")
