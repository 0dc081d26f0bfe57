"""Key types at the edges of the integer fast path (engine/events.py: an integer key is its own `_kid`), and
output names that collide with spine columns."""

from __future__ import annotations

import polars as pl
import pytest

from fpipe.engine.build import build_frame
from strategies import at, feature, make_defs, mins

UTC_US = pl.Datetime("us", "UTC")


def test_uint64_keys_above_int64_range() -> None:
    """UInt64 ids >= 2**63 do not fit the Int64 `_kid`: they are mapped to ids like string keys (this used
    to raise on the strict cast)."""
    big = 2**63 + 5
    times = [at(0), at(1), at(2)]
    src = pl.DataFrame(
        {"uid": [big, big, 7], "k2": ["p"] * 3, "ts": times, "avail": times, "c": [1.0, 2.0, 3.0]},
        schema={"uid": pl.UInt64, "k2": pl.String, "ts": UTC_US, "avail": UTC_US, "c": pl.Float64},
    )
    spine = pl.DataFrame(
        {"uid": [big, 7, 8], "k2": ["p"] * 3, "t": [at(5)] * 3}, schema={"uid": pl.UInt64, "k2": pl.String, "t": UTC_US}
    )
    defs = make_defs([feature("n", "count", "c", window=mins(10)), feature("s", "sum", "c"), feature("last", "latest", "c")])
    out = build_frame(defs, "ts", sources={"ev": src, "cb": src.clear()}, spine=spine).frame
    assert out.get_column("uid").to_list() == [big, 7, 8]
    assert out.get_column("n").to_list() == [2, 1, 0]
    assert out.get_column("s").to_list() == [3.0, 3.0, 0.0]
    assert out.get_column("last").to_list() == [2.0, 3.0, None]


def test_feature_named_like_a_spine_column_is_a_clear_error() -> None:
    """Two output columns of one name: a located error (exit 2 in the CLI), not a Polars DuplicateError."""
    from fpipe.errors import DataError

    times = [at(0)]
    src = pl.DataFrame(
        {"uid": [1], "k2": ["p"], "ts": times, "avail": times, "c": [1.0]},
        schema={"uid": pl.Int64, "k2": pl.String, "ts": UTC_US, "avail": UTC_US, "c": pl.Float64},
    )
    spine = pl.DataFrame({"uid": [1], "k2": ["p"], "t": [at(5)]}, schema={"uid": pl.Int64, "k2": pl.String, "t": UTC_US})
    defs = make_defs([feature("k2", "count", "c")])
    with pytest.raises(DataError) as info:
        build_frame(defs, "ts", sources={"ev": src, "cb": src.clear()}, spine=spine)
    assert info.value.diagnostics[0].message.startswith("feature 'k2' of training set 'ts' has the name of a column of spine")
    assert info.value.diagnostics[0].hint is not None and "rename the feature" in info.value.diagnostics[0].hint


def _spine_label_build(rows: int) -> pl.DataFrame:
    from fpipe.spec.model import LabelSpec

    times = [at(0)]
    src = pl.DataFrame(
        {"uid": [1], "k2": ["p"], "ts": times, "avail": times, "c": [1.0]},
        schema={"uid": pl.Int64, "k2": pl.String, "ts": UTC_US, "avail": UTC_US, "c": pl.Float64},
    )
    spine = pl.DataFrame(
        {"uid": [1, 2][:rows], "k2": ["p", "p"][:rows], "t": [at(5), at(6)][:rows], "y": [1, 0][:rows]},
        schema={"uid": pl.Int64, "k2": pl.String, "t": UTC_US, "y": pl.Int64},
    )
    defs = make_defs([feature("n", "count", "c")], LabelSpec("y", spine_column="y"))
    return build_frame(defs, "ts", sources={"ev": src, "cb": src.clear()}, spine=spine).frame


def test_label_read_from_the_spine_column_of_its_own_name() -> None:
    """`y: {spine_column: y}`: the column is the label, once, in the label's place (it raised DuplicateError)."""
    out = _spine_label_build(2)
    assert out.columns == ["uid", "k2", "t", "n", "y"]
    assert out.get_column("y").to_list() == [1, 0]


def test_label_from_a_spine_column_on_an_empty_spine() -> None:
    """No spine rows (e.g. a --start/--end that selects none): an empty table, not a crash."""
    out = _spine_label_build(0)
    assert out.height == 0 and out.columns == ["uid", "k2", "t", "n", "y"]
