"""Hand-computed cases that pin the oracle (tests/oracle.py) to SPEC section 3.

Each `case_*` function builds a tiny definition, data and the expected output worked out by hand in its
docstring. The registry CASES is run here through the oracle and, in test_engine_rules.py, through the
engine: one named test per rule in both files (`test_<rule>`).

Grid: `at(m)` is 2024-01-01T00:00Z + m minutes; `row(uid, ts, avail, x, n, s)` takes minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fpipe.spec.expr import parse_expr
from fpipe.spec.model import Cutoff, Definitions, SpineSpec
from oracle import build_oracle, eval_expr, hop_floor, to_utc
from strategies import (
    at,
    feature,
    label,
    make_defs,
    mins,
    mutate_invisible,
    order_preserving_shuffle,
    row,
    scenarios,
    source_schema,
    source_spec,
    spine_schema,
    srow,
    values_equal,
    without_label,
)

NAN = float("nan")


@dataclass
class RuleCase:
    defs: Definitions
    sources: dict[str, list[dict[str, Any]]]
    spine: list[dict[str, Any]] | None  # None: the spine comes from the definitions (source / schedule)
    expect: dict[str, list[Any]]  # column -> expected values, in output order
    censored_times: list[datetime | None] | None = None  # spine times of censored rows, in order
    columns: list[str] | None = None  # the exact expected column order
    source_schemas: dict[str, dict[str, pl.DataType]] = field(default_factory=dict)  # engine frames
    spine_schema: dict[str, pl.DataType] | None = None
    column_types: dict[str, dict[str, str]] | None = None


CASES: dict[str, Callable[[], RuleCase]] = {}


def case(fn: Callable[[], RuleCase]) -> Callable[[], RuleCase]:
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


def one(f: Any, rows: list[dict[str, Any]], spine: list[dict[str, Any]], expect: list[Any], **kw: Any) -> RuleCase:
    """A case with one feature `f` over source `ev`."""
    defs = make_defs([f], **kw)
    return RuleCase(defs, {"ev": rows, "cb": []}, spine, {f.name: expect})


# ------------------------------------------------------------------------------------------ visibility
@case
def case_exclusive_cutoff_excludes_row_available_exactly_at_t() -> RuleCase:
    """et=0, avail=5. At t=5: avail < t is false -> 0. At t=6: 1."""
    return one(feature("c", "count"), [row(1, 0, 5)], [srow(1, 5), srow(1, 6)], [0, 1])


@case
def case_inclusive_cutoff_includes_row_available_exactly_at_t() -> RuleCase:
    """Inclusive: avail <= t. At t=4: 0; t=5: 1."""
    return one(feature("c", "count"), [row(1, 0, 5)], [srow(1, 4), srow(1, 5)], [0, 1], cutoff=Cutoff.INCLUSIVE)


@case
def case_row_available_before_event_time_not_seen_before_event_time() -> RuleCase:
    """et=5, avail=2 (clock skew). Exclusive: t=3 -> 0, t=5 -> 0 (et < t false), t=6 -> 1."""
    return one(feature("c", "count"), [row(1, 5, 2)], [srow(1, 3), srow(1, 5), srow(1, 6)], [0, 0, 1])


@case
def case_row_available_before_event_time_inclusive_seen_at_event_time() -> RuleCase:
    """Inclusive, et=5 avail=2: t=4 -> 0, t=5 -> 1."""
    return one(feature("c", "count", cutoff=Cutoff.INCLUSIVE), [row(1, 5, 2)], [srow(1, 4), srow(1, 5)], [0, 1])


@case
def case_null_available_time_never_visible() -> RuleCase:
    """avail null -> never visible, even long after: count 0; the other row counts."""
    return one(feature("c", "count"), [row(1, 0, None), row(1, 1, 1)], [srow(1, 100)], [1])


@case
def case_null_event_time_never_visible() -> RuleCase:
    return one(feature("c", "count"), [row(1, None, 0), row(1, 1, 1)], [srow(1, 100)], [1])


@case
def case_lag_defines_availability_without_available_time() -> RuleCase:
    """No available_time, lag 2m: et=0 -> avail=2. t=2 -> 0; t=3 -> 1."""
    src = source_spec("ev", available_time=None, lag=mins(2))
    return one(feature("c", "count"), [row(1, 0)], [srow(1, 2), srow(1, 3)], [0, 1],
               sources=[src, source_spec("cb")])


@case
def case_lag_adds_to_available_time_column() -> RuleCase:
    """(SPEC silent) available_time and lag together: avail = available_time + lag. et=0, avail=1, lag 2m
    -> 3: t=3 -> 0, t=4 -> 1."""
    src = source_spec("ev", lag=mins(2))
    return one(feature("c", "count"), [row(1, 0, 1)], [srow(1, 3), srow(1, 4)], [0, 1],
               sources=[src, source_spec("cb")])


@case
def case_feature_cutoff_overrides_source_overrides_project() -> RuleCase:
    """Project inclusive, source exclusive, feature a (no cutoff) -> exclusive, b inclusive. et=avail=5, t=5."""
    src = source_spec("ev", cutoff=Cutoff.EXCLUSIVE)
    defs = make_defs([feature("a", "count"), feature("b", "count", cutoff=Cutoff.INCLUSIVE)],
                     sources=[src, source_spec("cb")], cutoff=Cutoff.INCLUSIVE)
    return RuleCase(defs, {"ev": [row(1, 5)], "cb": []}, [srow(1, 5)], {"a": [0], "b": [1]})


# --------------------------------------------------------------------------------------------- windows
@case
def case_window_start_edge_included_with_exclusive_cutoff() -> RuleCase:
    """w=5m, t=10: t-w <= et < t. Rows et=4 (out), 5 (in, exactly t-w), 9 (in), 10 (out) -> 2."""
    rows = [row(1, 4), row(1, 5), row(1, 9), row(1, 10, 9)]
    return one(feature("c", "count", window=mins(5)), rows, [srow(1, 10)], [2])


@case
def case_window_start_edge_exclusive_with_inclusive_cutoff() -> RuleCase:
    """Inclusive: t-w < et <= t. Rows et=5 (out), 6 (in), 10 (in) -> 2."""
    rows = [row(1, 5), row(1, 6), row(1, 10)]
    return one(feature("c", "count", window=mins(5)), rows, [srow(1, 10)], [2], cutoff=Cutoff.INCLUSIVE)


@case
def case_no_window_covers_all_visible_rows_before_t() -> RuleCase:
    """No window: every visible row with et < t: et=0,1,9 at t=10 -> sum n = 1+2+4 = 7; et=10 excluded."""
    rows = [row(1, 0, n=1), row(1, 1, n=2), row(1, 9, n=4), row(1, 10, 9, n=8)]
    return one(feature("s", "sum", "n"), rows, [srow(1, 10)], [7])


@case
def case_hop_rounds_window_start_down_to_multiple_since_epoch() -> RuleCase:
    """w=5m, hop=3m, t=10 -> t-w = min 5 -> floor to 3-minute multiple = min 3 (BASE is a whole day since
    the epoch). Rows et=2,3,4,5 -> with hop: 3,4,5 -> 3; without: only 5 -> 1."""
    rows = [row(1, 2), row(1, 3), row(1, 4), row(1, 5)]
    defs = make_defs([feature("h", "count", window=mins(5), hop=mins(3)), feature("w", "count", window=mins(5))])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"h": [3], "w": [1]})


@case
def case_hop_with_inclusive_cutoff_keeps_open_start() -> RuleCase:
    """Inclusive, w=5m, hop=3m, t=10: start floor(5) = 3, window 3 < et <= 10. Rows et 3 (out), 4, 10 (in)
    -> 2."""
    return one(feature("h", "count", window=mins(5), hop=mins(3)), [row(1, 3), row(1, 4), row(1, 10)],
               [srow(1, 10)], [2], cutoff=Cutoff.INCLUSIVE)


@case
def case_dst_day_is_24h() -> RuleCase:
    """America/New_York, naive times. t = 2024-03-10 12:00 local (EDT, 16:00Z); 1d window starts at
    2024-03-09 16:00Z = 11:00 EST. Rows at 2024-03-09 11:30 local (16:30Z) and 2024-03-10 09:00 local:
    both inside 24h -> 2 (a calendar day would start at 12:00 local the day before and give 1)."""
    ny_rows = [
        {"uid": 1, "k2": "p", "ts": datetime(2024, 3, 9, 11, 30), "avail": datetime(2024, 3, 9, 11, 30),
         "x": None, "n": None, "s": None},
        {"uid": 1, "k2": "p", "ts": datetime(2024, 3, 10, 9, 0), "avail": datetime(2024, 3, 10, 9, 0),
         "x": None, "n": None, "s": None},
    ]
    defs = make_defs([feature("c", "count", window=timedelta(days=1))], tz="America/New_York")
    naive = {"uid": pl.Int64(), "k2": pl.String(), "ts": pl.Datetime("us"), "avail": pl.Datetime("us"),
             "x": pl.Float64(), "n": pl.Int64(), "s": pl.String()}
    return RuleCase(defs, {"ev": ny_rows, "cb": []}, [{"uid": 1, "k2": "p", "t": datetime(2024, 3, 10, 12, 0)}],
                    {"c": [2], "t": [datetime(2024, 3, 10, 16, 0, tzinfo=UTC)]},
                    source_schemas={"ev": naive, "cb": naive}, spine_schema=spine_schema(naive=True))


# ------------------------------------------------------------------------------------------------ time
NY_NAIVE = {"uid": pl.Int64(), "k2": pl.String(), "ts": pl.Datetime("us"), "avail": pl.Datetime("us"),
            "x": pl.Float64(), "n": pl.Int64(), "s": pl.String()}


@case
def case_ambiguous_local_time_takes_first_occurrence() -> RuleCase:
    """2024-11-03 01:30 happens twice in New York: 05:30Z (EDT) and 06:30Z (EST). The first is taken, so the
    row is seen at 05:45Z."""
    t = datetime(2024, 11, 3, 1, 30)
    rows = [{"uid": 1, "k2": "p", "ts": t, "avail": t, "x": None, "n": None, "s": None}]
    defs = make_defs([feature("c", "count")], tz="America/New_York")
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, datetime(2024, 11, 3, 5, 45, tzinfo=UTC))],
                    {"c": [1]}, source_schemas={"ev": NY_NAIVE, "cb": NY_NAIVE})


@case
def case_naive_times_read_in_source_timezone() -> RuleCase:
    """Source zone Asia/Kolkata (+05:30), project UTC. Naive 05:40 local = 00:10Z. Spine t=00:10Z -> not
    visible (exclusive); t=00:11Z -> visible."""
    src = source_spec("ev", timezone="Asia/Kolkata")
    rows = [{"uid": 1, "k2": "p", "ts": datetime(2024, 1, 1, 5, 40), "avail": datetime(2024, 1, 1, 5, 40),
             "x": None, "n": None, "s": None}]
    naive = {"uid": pl.Int64(), "k2": pl.String(), "ts": pl.Datetime("us"), "avail": pl.Datetime("us"),
             "x": pl.Float64(), "n": pl.Int64(), "s": pl.String()}
    defs = make_defs([feature("c", "count")], sources=[src, source_spec("cb")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10), srow(1, 11)], {"c": [0, 1]},
                    source_schemas={"ev": naive})


@case
def case_date_values_are_midnight_in_zone() -> RuleCase:
    """Project zone Asia/Kolkata; event dates 2024-01-02 = 2024-01-01T18:30Z. At 18:30Z -> 0, 18:31Z -> 1."""
    src = source_spec("ev", available_time=None)
    rows = [{"uid": 1, "k2": "p", "ts": date(2024, 1, 2), "x": None, "n": None, "s": None}]
    sch = {"uid": pl.Int64(), "k2": pl.String(), "ts": pl.Date(), "x": pl.Float64(), "n": pl.Int64(),
           "s": pl.String()}
    defs = make_defs([feature("c", "count")], sources=[src, source_spec("cb")], tz="Asia/Kolkata")
    spine = [srow(1, datetime(2024, 1, 1, 18, 30, tzinfo=UTC)),
             srow(1, datetime(2024, 1, 1, 18, 31, tzinfo=UTC))]
    return RuleCase(defs, {"ev": rows, "cb": []}, spine, {"c": [0, 1]}, source_schemas={"ev": sch})


@case
def case_source_in_another_aware_zone_compares_as_instants() -> RuleCase:
    """Source times aware in Asia/Kolkata: 05:39 and 05:40 IST are minutes 9 and 10 UTC. t=10: 1."""
    ist = timezone(timedelta(hours=5, minutes=30))
    rows = [row(1, at(9).astimezone(ist)), row(1, at(10).astimezone(ist))]
    sch = {**source_schema(), "ts": pl.Datetime("us", "Asia/Kolkata"), "avail": pl.Datetime("us", "Asia/Kolkata")}
    defs = make_defs([feature("c", "count")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"c": [1]}, source_schemas={"ev": sch})


@case
def case_string_times_parsed_with_timestamp_format() -> RuleCase:
    """timestamp_format '%Y-%m-%d %H:%M', naive in the project zone (UTC): 00:09 seen at t=10, 00:10 not."""
    src = source_spec("ev", timestamp_format="%Y-%m-%d %H:%M", available_time=None)
    rows = [{"uid": 1, "k2": "p", "ts": f"2024-01-01 00:{m:02d}", "x": None, "n": None, "s": None} for m in (9, 10)]
    sch = {"uid": pl.Int64(), "k2": pl.String(), "ts": pl.String(), "x": pl.Float64(), "n": pl.Int64(),
           "s": pl.String()}
    defs = make_defs([feature("c", "count")], sources=[src, source_spec("cb")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"c": [1]}, source_schemas={"ev": sch})


@case
def case_integer_epoch_times_with_time_unit() -> RuleCase:
    """time_unit s: integers are epoch seconds (UTC instants). Minutes 9 and 10 at t=10 -> 1."""
    src = source_spec("ev", time_unit="s", available_time=None)
    rows = [{"uid": 1, "k2": "p", "ts": int(at(m).timestamp()), "x": None, "n": None, "s": None} for m in (9, 10)]
    sch = {"uid": pl.Int64(), "k2": pl.String(), "ts": pl.Int64(), "x": pl.Float64(), "n": pl.Int64(),
           "s": pl.String()}
    defs = make_defs([feature("c", "count")], sources=[src, source_spec("cb")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"c": [1]}, source_schemas={"ev": sch})


@case
def case_spine_key_of_narrower_integer_type_matches() -> RuleCase:
    """A spine uid column typed Int32 matches the source's Int64 uid."""
    defs = make_defs([feature("c", "count")])
    return RuleCase(defs, {"ev": [row(1, 0), row(2, 0)], "cb": []}, [srow(1, 10)], {"c": [1]},
                    spine_schema={**spine_schema(), "uid": pl.Int32()})


@case
def case_aware_values_in_different_zones_compare_as_instants() -> RuleCase:
    """Spine t = 2024-01-01 05:40+05:30 (= 00:10Z) against a row at 00:09Z -> 1 and 00:10Z -> exclusive 0.
    The spine time is output as the UTC instant."""
    ist = timezone(timedelta(hours=5, minutes=30))
    t = datetime(2024, 1, 1, 5, 40, tzinfo=ist)
    defs = make_defs([feature("c", "count")])
    return RuleCase(defs, {"ev": [row(1, 9), row(1, 10), row(2, 10)], "cb": []}, [srow(1, t), srow(2, t)],
                    {"c": [1, 0], "t": [at(10), at(10)]})


# -------------------------------------------------------------------------------------------- lookups
@case
def case_latest_picks_largest_event_time_not_last_input() -> RuleCase:
    """Rows (et, x): (3, 1.0), (1, 2.0) -> latest at t=10 is 1.0 (et 3), though (1, 2.0) comes later."""
    return one(feature("l", "latest", "x"), [row(1, 3, x=1.0), row(1, 1, x=2.0)], [srow(1, 10)], [1.0])


@case
def case_latest_tie_broken_by_available_time_then_input_order() -> RuleCase:
    """All et=3. (avail 4, x=1), (avail 5, x=2), (avail 5, x=3), (avail 4, x=4).
    t=10: largest avail 5, later input -> 3.0. t=5 (exclusive): avail-5 rows invisible -> among avail 4,
    later input -> 4.0."""
    rows = [row(1, 3, 4, x=1.0), row(1, 3, 5, x=2.0), row(1, 3, 5, x=3.0), row(1, 3, 4, x=4.0)]
    return one(feature("l", "latest", "x"), rows, [srow(1, 10), srow(1, 5)], [3.0, 4.0])


@case
def case_exclusive_lookup_excludes_event_at_t() -> RuleCase:
    """Row et=5 avail=4 x=2, row et=2 x=1. t=5: exclusive -> 1.0; inclusive feature -> 2.0."""
    rows = [row(1, 2, x=1.0), row(1, 5, 4, x=2.0)]
    defs = make_defs([feature("e", "latest", "x"), feature("i", "latest", "x", cutoff=Cutoff.INCLUSIVE)])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 5)], {"e": [1.0], "i": [2.0]})


@case
def case_ttl_edge_is_inclusive() -> RuleCase:
    """ttl 5m, et=0: t=5 (age exactly 5m) -> 7.0; t=6 -> null; with default -1.5 -> -1.5."""
    defs = make_defs([feature("l", "latest", "x", ttl=mins(5)),
                      feature("d", "latest", "x", ttl=mins(5), default=-1.5)])
    return RuleCase(defs, {"ev": [row(1, 0, x=7.0)], "cb": []}, [srow(1, 5), srow(1, 6)],
                    {"l": [7.0, None], "d": [7.0, -1.5]})


@case
def case_ttl_under_inclusive_cutoff_still_age_le_ttl() -> RuleCase:
    """Inclusive, ttl 2m: row et=3 at t=3 (age 0) -> 1.0; t=5 (age 2m) -> 1.0; t=6 -> null."""
    return one(feature("l", "latest", "x", ttl=mins(2), cutoff=Cutoff.INCLUSIVE), [row(1, 3, x=1.0)],
               [srow(1, 3), srow(1, 5), srow(1, 6)], [1.0, 1.0, None])


@case
def case_latest_returns_null_value_of_latest_row() -> RuleCase:
    """Rows et=1 x=1.0, et=2 x=null. latest -> null (and default does not replace it);
    skip_nulls -> 1.0."""
    rows = [row(1, 1, x=1.0), row(1, 2, x=None)]
    defs = make_defs([feature("l", "latest", "x", default=-1.5), feature("k", "latest", "x", skip_nulls=True)])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"l": [None], "k": [1.0]})


@case
def case_latest_where_filters_before_choice() -> RuleCase:
    """where s = 'a': rows et=1 s=a x=1, et=2 s=b x=2 -> 1.0 (not null, not 2.0)."""
    rows = [row(1, 1, x=1.0, s="a"), row(1, 2, x=2.0, s="b")]
    return one(feature("l", "latest", "x", where="s = 'a'"), rows, [srow(1, 10)], [1.0])


@case
def case_latest_default_when_no_row_qualifies() -> RuleCase:
    return one(feature("l", "latest", "s", default="zz"), [row(1, 5, s="a")], [srow(1, 5), srow(1, 6)],
               ["zz", "a"])


# ------------------------------------------------------------------------------------------------ keys
@case
def case_null_key_never_matches() -> RuleCase:
    """A source row with uid null and a spine row with uid null: 0 rows; uid 1 sees only its own row."""
    rows = [row(None, 0), row(1, 0), row(None, 1)]
    return one(feature("c", "count"), rows, [srow(None, 10), srow(1, 10)], [0, 1])


@case
def case_composite_key_matches_all_parts() -> RuleCase:
    """Entity acct = (uid, k2). Rows (1,p), (1,q), (2,p), (1,None). Spine (1,p) -> 1, (1,q) -> 1,
    (1,None) -> 0."""
    rows = [row(1, 0, k2="p"), row(1, 0, k2="q"), row(2, 0, k2="p"), row(1, 0, k2=None)]
    return one(feature("c", "count", entity="acct"), rows, [srow(1, 10, "p"), srow(1, 10, "q"),
                                                            srow(1, 10, None)], [1, 1, 0])


# ----------------------------------------------------------------------------------------- aggregations
@case
def case_empty_window_count_sum_zero_others_null_default_overrides() -> RuleCase:
    defs = make_defs([
        feature("cnt", "count"), feature("sum_n", "sum", "n"), feature("sum_x", "sum", "x"),
        feature("cd", "count_distinct", "s"), feature("mean_x", "mean", "x"), feature("min_s", "min", "s"),
        feature("tsl", "time_since_last"), feature("cnt_d", "count", default=7),
        feature("mean_d", "mean", "x", default=-1.5), feature("lk", "last_k", "x", k=2),
    ])
    return RuleCase(defs, {"ev": [row(2, 0, n=1, x=1.0, s="a")], "cb": []}, [srow(1, 10)], {
        "cnt": [0], "sum_n": [0], "sum_x": [0.0], "cd": [0], "mean_x": [None], "min_s": [None],
        "tsl": [None], "cnt_d": [7], "mean_d": [-1.5], "lk": [None],
    })


@case
def case_all_null_window_is_empty_for_that_column() -> RuleCase:
    """Two rows with x null: count rows 2, count(x) 0, sum 0.0, mean null, default applies to mean."""
    rows = [row(1, 0), row(1, 1)]
    defs = make_defs([feature("rows", "count"), feature("cx", "count", "x"), feature("sx", "sum", "x"),
                      feature("mx", "mean", "x"), feature("md", "mean", "x", default=-1.5),
                      feature("fx", "first", "x", default=-1.5)])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)],
                    {"rows": [2], "cx": [0], "sx": [0.0], "mx": [None], "md": [-1.5], "fx": [-1.5]})


@case
def case_nan_is_read_as_null() -> RuleCase:
    """x = NaN, 2.0, 4.0: count(x) 2, mean 3.0, min 2.0, count_distinct 2, latest (NaN row last) null."""
    rows = [row(1, 0, x=2.0), row(1, 1, x=4.0), row(1, 2, x=NAN)]
    defs = make_defs([feature("cx", "count", "x"), feature("mx", "mean", "x"), feature("mn", "min", "x"),
                      feature("cd", "count_distinct", "x"), feature("lt", "latest", "x")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)],
                    {"cx": [2], "mx": [3.0], "mn": [2.0], "cd": [2], "lt": [None]})


@case
def case_std_var_ddof_and_too_few_values() -> RuleCase:
    """x = 1, 2, 4: mean 7/3; var ddof=1 = (16/9+1/9+25/9)/2 = 7/3; ddof=0 = 14/9; std = sqrt.
    Spine uid 2 has one value: var ddof=1 null (default does not replace it), ddof=0 -> 0.0."""
    rows = [row(1, 0, x=1.0), row(1, 1, x=2.0), row(1, 2, x=4.0), row(2, 0, x=5.0)]
    defs = make_defs([feature("v1", "var", "x", default=-1.5), feature("v0", "var", "x", ddof=0),
                      feature("s1", "std", "x"), feature("s3", "std", "x", ddof=3)])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10), srow(2, 10)], {
        "v1": [7 / 3, None], "v0": [14 / 9, 0.0], "s1": [(7 / 3) ** 0.5, None], "s3": [None, None]})


@case
def case_sum_keeps_integer_type_mean_is_float() -> RuleCase:
    rows = [row(1, 0, n=1), row(1, 1, n=2), row(1, 2, n=None)]
    defs = make_defs([feature("sn", "sum", "n"), feature("mn", "mean", "n"), feature("mx", "max", "n")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"sn": [3], "mn": [1.5], "mx": [2]})


@case
def case_min_max_keep_string_type() -> RuleCase:
    rows = [row(1, 0, s="b"), row(1, 1, s="a"), row(1, 2, s="c"), row(1, 3, s=None)]
    defs = make_defs([feature("mn", "min", "s"), feature("mx", "max", "s")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"mn": ["a"], "mx": ["c"]})


@case
def case_count_distinct_ignores_nulls_counts_duplicates_once() -> RuleCase:
    rows = [row(1, 0, s="a"), row(1, 1, s="a"), row(1, 2, s="b"), row(1, 3, s=None)]
    return one(feature("cd", "count_distinct", "s"), rows, [srow(1, 10)], [2])


@case
def case_duplicate_rows_are_all_counted() -> RuleCase:
    """Two identical rows are two events: count 2, sum 2*3 = 6."""
    rows = [row(1, 0, n=3), row(1, 0, n=3)]
    defs = make_defs([feature("c", "count"), feature("s", "sum", "n")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"c": [2], "s": [6]})


@case
def case_first_last_order_event_time_then_available_time_then_input() -> RuleCase:
    """Rows (et, avail, n): (2,2,10), (1,3,20), (1,2,30), (1,2,40), (2,2,50).
    Order: (1,2,30) (1,2,40) (1,3,20) (2,2,10) (2,2,50) -> first 30, last 50."""
    rows = [row(1, 2, 2, n=10), row(1, 1, 3, n=20), row(1, 1, 2, n=30), row(1, 1, 2, n=40), row(1, 2, 2, n=50)]
    defs = make_defs([feature("f", "first", "n"), feature("l", "last", "n")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"f": [30], "l": [50]})


@case
def case_first_last_ignore_null_values() -> RuleCase:
    """Rows et 1: null, 2: 5, 3: 6, 4: null -> first 5, last 6."""
    rows = [row(1, 1), row(1, 2, n=5), row(1, 3, n=6), row(1, 4)]
    defs = make_defs([feature("f", "first", "n"), feature("l", "last", "n")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"f": [5], "l": [6]})


@case
def case_last_k_oldest_first_nulls_excluded() -> RuleCase:
    """Values by event time: 1, null, 2, 3 (input shuffled). k=2 -> [2, 3]; k=5 -> [1, 2, 3]."""
    rows = [row(1, 3, n=2), row(1, 1, n=1), row(1, 4, n=3), row(1, 2)]
    defs = make_defs([feature("lk2", "last_k", "n", k=2), feature("lk5", "last_k", "n", k=5)])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"lk2": [[2, 3]], "lk5": [[1, 2, 3]]})


@case
def case_time_since_last_and_first_in_float_seconds() -> RuleCase:
    """Rows et=2, 5; t=10 -> since last 300.0 s, since first 480.0 s; a 3m window -> 300.0 / 300.0."""
    rows = [row(1, 5), row(1, 2)]
    defs = make_defs([feature("tl", "time_since_last"), feature("tf", "time_since_first"),
                      feature("tw", "time_since_first", window=mins(6))])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"tl": [300.0], "tf": [480.0], "tw": [300.0]})


@case
def case_window_sum_mean_exact_when_large_values_lie_outside_the_window() -> RuleCase:
    """A window holds only its own rows: x = 1e12 at et 0, then 0.1 and 0.2 at et 5, 6. A 3m window at
    t=7 holds 0.1 and 0.2 -> sum 0.30000000000000004 (any direct summation), mean half of it; a window
    computed as a difference of running totals would lose ~5 digits to the 1e12 outside the window."""
    rows = [row(1, 0, x=1e12), row(1, 5, x=0.1), row(1, 6, x=0.2)]
    defs = make_defs([feature("s", "sum", "x", window=mins(3)), feature("m", "mean", "x", window=mins(3)),
                      feature("v", "var", "x", window=mins(3))])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 7)],
                    {"s": [0.1 + 0.2], "m": [(0.1 + 0.2) / 2], "v": [0.005]})


@case
def case_inclusive_window_sum_exact_when_large_values_sit_on_the_open_start_edge() -> RuleCase:
    """Inclusive, w=2m, t=16: window (14, 16]. Rows x = 1e12 at et 14 (on the open edge: out) and 0.1 at
    et 15 -> sum 0.1, mean 0.1 exactly."""
    rows = [row(1, 14, 12, x=1e12), row(1, 15, 13, x=0.1)]
    defs = make_defs([feature("s", "sum", "x", window=mins(2)), feature("m", "mean", "x", window=mins(2))],
                     cutoff=Cutoff.INCLUSIVE)
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 16)], {"s": [0.1], "m": [0.1]})


@case
def case_where_filters_before_aggregation() -> RuleCase:
    """where x > 0: x = 1, -2, null, 3 -> sum 4.0, count 2 (null x: predicate null -> dropped)."""
    rows = [row(1, 0, x=1.0), row(1, 1, x=-2.0), row(1, 2, x=None), row(1, 3, x=3.0)]
    defs = make_defs([feature("s", "sum", "x", where="x > 0"), feature("c", "count", where="x > 0")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"s": [4.0], "c": [2]})


# ------------------------------------------------------------------------------------------------ labels
@case
def case_label_forward_window_edges_exclusive_and_inclusive() -> RuleCase:
    """t=0, h=5m: rows et 0 (n=1), 4 (n=10), 5 (n=100). Exclusive [0, 5) -> 11; inclusive (0, 5] -> 110.
    (observed until et 20 by another row.)"""
    rows = [row(1, 0, n=1), row(1, 4, n=10), row(1, 5, n=100), row(9, 20)]
    ex = make_defs([feature("c", "count")], label("lbl", "sum", "n"))
    return RuleCase(ex, {"ev": rows, "cb": []}, [srow(1, 0)], {"lbl": [11], "c": [0]})


@case
def case_label_inclusive_cutoff_mirror_window() -> RuleCase:
    rows = [row(1, 0, n=1), row(1, 4, n=10), row(1, 5, n=100), row(9, 20)]
    defs = make_defs([feature("c", "count")], label("lbl", "sum", "n", cutoff=Cutoff.INCLUSIVE))
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 0)], {"lbl": [110]})


@case
def case_label_gap_shifts_window() -> RuleCase:
    """gap 2m, h 3m at t=0: [2, 5). Rows et 1 (out), 2 (in), 4 (in), 5 (out) -> 2."""
    rows = [row(1, 1), row(1, 2), row(1, 4), row(1, 5), row(9, 20)]
    defs = make_defs([feature("c", "count")], label("lbl", "count", gap=mins(2), horizon=mins(3)))
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 0)], {"lbl": [2]})


@case
def case_label_uses_event_time_only() -> RuleCase:
    """Label rows with null or late available_time still count: et 1 (avail null), et 2 (avail 100) -> 2."""
    rows = [row(1, 1, None), row(1, 2, 100), row(9, 20)]
    defs = make_defs([feature("c", "count")], label("lbl", "count"))
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 0)], {"lbl": [2]})


@case
def case_label_first_last_order_like_features_null_available_time_last() -> RuleCase:
    """Label rows at et 2: (avail 3, s=a), (avail 1, s=b), (avail null, s=c), (avail 1, s=d).
    Order (et, avail, pos), null avail last: b(1,pos1) d(1,pos3) a(3) c(null) -> first b, last c."""
    rows = [row(1, 2, 3, s="a"), row(1, 2, 1, s="b"), row(1, 2, None, s="c"), row(1, 2, 1, s="d"), row(9, 20)]
    last = make_defs([feature("c", "count")], label("lbl", "last", "s"))
    return RuleCase(last, {"ev": rows, "cb": []}, [srow(1, 0)], {"lbl": ["c"]})


@case
def case_label_first_orders_by_available_time_within_event_time_ties() -> RuleCase:
    rows = [row(1, 2, 3, s="a"), row(1, 2, 1, s="b"), row(1, 2, None, s="c"), row(1, 2, 1, s="d"), row(9, 20)]
    defs = make_defs([feature("c", "count")], label("lbl", "first", "s"))
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 0)], {"lbl": ["b"]})


@case
def case_label_censor_drop() -> RuleCase:
    """Source max et = 10. h=5: t=5 ends at 10 == observed -> kept; t=6 ends at 11 > 10 -> dropped and
    reported; t=null -> kept (sees nothing, count 0)."""
    rows = [row(1, 7), row(2, 10)]
    defs = make_defs([feature("c", "count")], label("lbl", "count", horizon=mins(5)))
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 5), srow(1, 6), srow(1, None)],
                    {"lbl": [1, 0], "t": [at(5), None]}, censored_times=[at(6)], columns=["uid", "k2", "t", "c", "lbl"])


@case
def case_label_censor_flag() -> RuleCase:
    """As censor_drop with censor: flag: all rows kept, `lbl_censored` = False, True, False."""
    rows = [row(1, 7), row(2, 10)]
    defs = make_defs([feature("c", "count")], label("lbl", "count", horizon=mins(5), censor="flag"))
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 5), srow(1, 6), srow(1, None)],
                    {"lbl": [1, 1, 0], "lbl_censored": [False, True, False]}, censored_times=[],
                    columns=["uid", "k2", "t", "c", "lbl", "lbl_censored"])


@case
def case_label_observed_until_declared_overrides_source_max() -> RuleCase:
    """Label observed_until = minute 8 although rows reach 10: t=3 (end 8) kept, t=4 (end 9) censored.
    Source observed_until = minute 30 is overridden by the label's."""
    src = source_spec("ev", observed_until=at(30))
    rows = [row(1, 7), row(2, 10)]
    defs = make_defs([feature("c", "count")], label("lbl", "count", horizon=mins(5), observed_until=at(8), censor="flag"),
                     sources=[src, source_spec("cb")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 3), srow(1, 4)],
                    {"lbl": [1, 1], "lbl_censored": [False, True]})


@case
def case_label_source_observed_until_used_when_label_has_none() -> RuleCase:
    src = source_spec("ev", observed_until=at(30))
    defs = make_defs([feature("c", "count")], label("lbl", "count", horizon=mins(5), censor="flag"), sources=[src, source_spec("cb")])
    return RuleCase(defs, {"ev": [row(1, 7), row(2, 10)], "cb": []}, [srow(1, 6), srow(1, 25), srow(1, 26)],
                    {"lbl": [1, 0, 0], "lbl_censored": [False, False, True]})


@case
def case_label_censored_when_label_source_has_no_events() -> RuleCase:
    """The label source has no row with an event time and declares no observed_until: nothing has been
    observed, so every label window with a time ends after the (absent) last event -> censored. (flag)"""
    defs = make_defs([feature("c", "count")], label("lbl", "count", horizon=mins(5), censor="flag"))
    return RuleCase(defs, {"ev": [row(1, None, None)], "cb": []}, [srow(1, 0), srow(1, None)],
                    {"lbl": [0, 0], "lbl_censored": [True, False]})


@case
def case_label_default_applies_before_expr() -> RuleCase:
    """max(x) over an empty window is null; default 1.0 first, then `lbl > 0` -> True. Non-empty: x=-1.5
    -> False."""
    rows = [row(2, 1, x=-1.5), row(9, 20)]
    defs = make_defs([feature("c", "count")], label("lbl", "max", "x", default=1.0, expr="lbl > 0"))
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 0), srow(2, 0)], {"lbl": [True, False]})


@case
def case_label_expr_over_count() -> RuleCase:
    rows = [row(1, 1), row(9, 20)]
    defs = make_defs([feature("c", "count")], label("lbl", "count", expr="lbl > 0"))
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 0), srow(2, 0)], {"lbl": [True, False]})


# ----------------------------------------------------------------------------------------------- derived
@case
def case_derived_true_division_zero_division_null_and_null_propagates() -> RuleCase:
    """a = count, b = sum n, m = mean x. uid 1: a=3, b=2 -> a/b = 1.5; uid 2: b=0 -> null;
    uid 3: m null -> m + 1 null."""
    rows = [row(1, 0, n=1, x=1.0), row(1, 1, n=1), row(1, 2, n=0), row(2, 0, n=0, x=2.0), row(3, 0)]
    a, b, m = feature("a", "count"), feature("b", "sum", "n"), feature("m", "mean", "x")
    defs = make_defs([a, b, m, feature("r", expr="a / b"), feature("p", expr="m + 1")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10), srow(2, 10), srow(3, 10)],
                    {"r": [1.5, None, None], "p": [2.0, 3.0, None], "a": [3, 1, 1]})


@case
def case_derived_integer_arithmetic_and_modulo_sign() -> RuleCase:
    """a = sum n = -7 + 0 + 2 = -5, b = count = 3: a % b = 1 (sign of the divisor, as Python and Polars),
    -a / b = 5/3, a * b = -15 stays integer."""
    rows = [row(1, 0, n=-7), row(1, 1, n=0), row(1, 2, n=2)]
    defs = make_defs([feature("a", "sum", "n"), feature("b", "count"), feature("m", expr="a % b"),
                      feature("q", expr="-a / b"), feature("p", expr="a * b")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"m": [1], "q": [5 / 3], "p": [-15]})


@case
def case_feature_dtype_casts_result() -> RuleCase:
    """dtype float64 on a count: 2.0; dtype int64 on a mean of 1 and 2 (1.5): truncated to 1."""
    rows = [row(1, 0, n=1), row(1, 1, n=2)]
    defs = make_defs([feature("c", "count", dtype="float64"), feature("m", "mean", "n", dtype="int64")])
    return RuleCase(defs, {"ev": rows, "cb": []}, [srow(1, 10)], {"c": [2.0], "m": [1]})


@case
def case_derived_may_depend_on_features_outside_training_set() -> RuleCase:
    """d = c * 2 where c is defined but not in the training set: columns are uid, k2, t, d only."""
    defs = make_defs([feature("d", expr="c * 2")], extra_features=[feature("c", "count")])
    return RuleCase(defs, {"ev": [row(1, 0), row(1, 1)], "cb": []}, [srow(1, 10)], {"d": [4]},
                    columns=["uid", "k2", "t", "d"])


# ------------------------------------------------------------------------------------------------ spines
@case
def case_spine_null_time_or_key_kept_and_sees_nothing() -> RuleCase:
    """Spine rows (1, null), (null, 10), (1, 10): counts 0, 0, 1; mean null, null, 1.0; default -1.5 used."""
    defs = make_defs([feature("c", "count"), feature("m", "mean", "x"), feature("d", "mean", "x", default=-1.5)])
    return RuleCase(defs, {"ev": [row(1, 0, x=1.0), row(None, 0, x=1.0)], "cb": []},
                    [srow(1, None), srow(None, 10), srow(1, 10)],
                    {"c": [0, 0, 1], "m": [None, None, 1.0], "d": [-1.5, -1.5, 1.0], "uid": [1, None, 1]})


@case
def case_output_one_row_per_spine_row_in_spine_order_columns_in_order() -> RuleCase:
    """Unsorted spine with duplicates is returned as is; features in training-set order (b before a)."""
    defs = make_defs([feature("b", "sum", "n"), feature("a", "count")])
    spine = [srow(2, 10), srow(1, 10), srow(2, 10), srow(1, 1)]
    return RuleCase(defs, {"ev": [row(1, 0, n=5), row(2, 0, n=7)], "cb": []}, spine,
                    {"uid": [2, 1, 2, 1], "b": [7, 5, 7, 5], "a": [1, 1, 1, 1]},
                    columns=["uid", "k2", "t", "b", "a"])


@case
def case_source_spine_offset_and_where() -> RuleCase:
    """Spine from source ev, offset -1m, where n > 0: rows (uid, et, n) (1,5,1), (2,6,0), (1,8,2) ->
    spine (1, 4), (1, 7); count at 4 -> 0 (et 5 later), at 7 -> 1. Columns: entity keys uid, k2, then the
    time column `t`."""
    sp = SpineSpec(name="sp", source="ev", offset=-mins(1), where="n > 0", time="t")
    defs = make_defs([feature("c", "count")], spine=sp)
    rows = [row(1, 5, n=1), row(2, 6, n=0), row(1, 8, n=2)]
    return RuleCase(defs, {"ev": rows, "cb": []}, None, {"uid": [1, 1], "t": [at(4), at(7)], "c": [0, 1]},
                    columns=["uid", "k2", "t", "c"])


@case
def case_schedule_spine_start_inclusive_end_exclusive_lookback() -> RuleCase:
    """every 5m from 0 to 15: ticks 0, 5, 10. Entities from ev with lookback 5m: a tick sees entities with
    tick-5m <= et < tick. Rows (uid,k2,et): (1,p,0), (2,p,4), (1,p,9). Tick 0: none; tick 5: (1,p), (2,p);
    tick 10: (1,p) (et 9), not (2,p) (et 4 < 5)."""
    sp = SpineSpec(name="sp", every=mins(5), start=at(0), end=at(15), entities_from="ev", lookback=mins(5),
                   time="t")
    defs = make_defs([feature("c", "count")], spine=sp)
    rows = [row(1, 0, k2="p"), row(2, 4, k2="p"), row(1, 9, k2="p")]
    return RuleCase(defs, {"ev": rows, "cb": []}, None,
                    {"t": [at(5), at(5), at(10)], "uid": [1, 2, 1], "c": [1, 1, 2]}, columns=["uid", "k2", "t", "c"])


TX_SCHEMA = {"user_id": pl.Int64(), "ts": pl.Datetime("us", "UTC")}


def _tx_case(spine: SpineSpec, expect: dict[str, list[Any]], columns: list[str]) -> RuleCase:
    tx = source_spec("tx", available_time=None, keys={"user": ("user_id",)})
    defs = make_defs([feature("c", "count", source="tx")], sources=[tx, source_spec("ev"), source_spec("cb")],
                     spine=spine)
    rows = [{"user_id": 1, "ts": at(5)}, {"user_id": 1, "ts": at(8)}]
    return RuleCase(defs, {"tx": rows, "ev": [], "cb": []}, None, expect, columns=columns,
                    source_schemas={"tx": TX_SCHEMA})


@case
def case_source_spine_default_names_keep_source_key_and_event_time_columns() -> RuleCase:
    """(SPEC silent) A source spine without `time:` and offset 0: columns are the source's key column
    (user_id) and its event_time column name (ts). Counts at 5 and 8: 0, 1."""
    return _tx_case(SpineSpec(name="sp", source="tx"), {"user_id": [1, 1], "ts": [at(5), at(8)], "c": [0, 1]},
                    ["user_id", "ts", "c"])


@case
def case_source_spine_with_offset_names_time_spine_time() -> RuleCase:
    """(SPEC silent) With an offset the spine time is not the event time: column `spine_time`. offset -1m:
    times 4, 7 -> counts 0, 1."""
    return _tx_case(SpineSpec(name="sp", source="tx", offset=-mins(1)),
                    {"spine_time": [at(4), at(7)], "c": [0, 1]}, ["user_id", "spine_time", "c"])


@case
def case_schedule_spine_default_time_name_is_spine_time() -> RuleCase:
    """(SPEC silent) Schedule every 5m in [0, 12): ticks 0, 5, 10; entities seen before the tick (no
    lookback): tick 0 none; 5: user 1? et 5 is not < 5 -> none; 10: user 1 (count 2)."""
    return _tx_case(SpineSpec(name="sp", every=mins(5), start=at(0), end=at(12), entities_from="tx"),
                    {"user_id": [1], "spine_time": [at(10)], "c": [2]}, ["user_id", "spine_time", "c"])


@case
def case_static_source_visible_at_every_instant() -> RuleCase:
    """A source without event_time: latest picks the last row in input order at any t."""
    src = source_spec("prof", event_time=None, available_time=None)
    f = feature("l", "latest", "s", source="prof")
    defs = make_defs([f], sources=[src, source_spec("ev"), source_spec("cb")])
    return RuleCase(defs, {"prof": [row(1, None, None, s="a"), row(1, None, None, s="b")], "ev": [], "cb": []},
                    [srow(1, 0), srow(2, 0)], {"l": ["b", None]})


# ------------------------------------------------------------------------------------------- run cases
def check_oracle(c: RuleCase) -> None:
    res = build_oracle(c.defs, "ts", c.sources, c.spine, c.column_types)
    if c.columns is not None:
        assert res.columns == c.columns
    for col, expected in c.expect.items():
        got = [r[col] for r in res.rows]
        assert len(got) == len(expected), (col, got, expected)
        assert all(values_equal(g, e) for g, e in zip(got, expected, strict=True)), (col, got, expected)
    if c.censored_times is not None:
        time_col = c.defs.spines[c.defs.training_sets["ts"].spine].time or "t"
        assert [r[time_col] for r in res.censored] == c.censored_times


def _make_test(name: str) -> Callable[[], None]:
    def test() -> None:
        check_oracle(CASES[name]())

    test.__name__ = f"test_{name}"
    test.__doc__ = CASES[name].__doc__
    return test


for _name in CASES:
    globals()[f"test_{_name}"] = _make_test(_name)


# --------------------------------------------------------------------------------- other oracle tests
def test_mixing_naive_and_aware_in_one_column_is_an_error() -> None:
    defs = make_defs([feature("c", "count")])
    rows = [row(1, 0), {**row(1, 0), "ts": datetime(2024, 1, 1), "avail": datetime(2024, 1, 1)}]
    with pytest.raises(ValueError, match="mixes naive and aware"):
        build_oracle(defs, "ts", {"ev": rows, "cb": []}, [srow(1, 10)])


def test_hop_floor_is_counted_from_the_unix_epoch() -> None:
    t = datetime(1970, 1, 1, 0, 7, tzinfo=UTC)
    assert hop_floor(t, mins(3)) == datetime(1970, 1, 1, 0, 6, tzinfo=UTC)
    assert hop_floor(at(5), timedelta(hours=1)) == at(0)


def test_to_utc_reads_naive_in_zone_and_dates_at_midnight() -> None:
    assert to_utc(datetime(2024, 7, 1, 12), "America/New_York") == datetime(2024, 7, 1, 16, tzinfo=UTC)
    assert to_utc(date(2024, 1, 2), "Asia/Kolkata") == datetime(2024, 1, 1, 18, 30, tzinfo=UTC)
    assert to_utc(0, "UTC", time_unit="s") == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("a / b", {"a": 3, "b": 2}, 1.5),
        ("a / b", {"a": 3, "b": 0}, None),
        ("a + b", {"a": None, "b": 1}, None),
        ("a > 0 AND b > 0", {"a": None, "b": -1}, False),
        ("a > 0 OR b > 0", {"a": None, "b": 1}, True),
        ("a > 0 OR b > 0", {"a": None, "b": -1}, None),
        ("NOT a", {"a": None}, None),
        ("a IS NULL", {"a": None}, True),
        ("a IN ('x', 'y')", {"a": "y"}, True),
        ("a NOT IN ('x', 'y')", {"a": None}, None),
        ("coalesce(a, b, 3)", {"a": None, "b": None}, 3),
        ("CASE WHEN a > 1 THEN 'big' WHEN a IS NULL THEN 'none' ELSE 'small' END", {"a": None}, "none"),
        ("a BETWEEN 1 AND 3", {"a": 3}, True),
        ("greatest(a, b)", {"a": None, "b": 2}, 2),
        ("nullif(a, 0)", {"a": 0}, None),
        ("-a * 2", {"a": 1.5}, -3.0),
    ],
)
def test_expression_evaluator(text: str, env: dict[str, Any], expected: Any) -> None:
    assert values_equal(eval_expr(parse_expr(text), env), expected)


# ------------------------------------------------------------------------ the oracle's own properties
@settings(max_examples=150)
@given(scenarios(allow_naive=False), st.data())
def test_oracle_no_leakage(sc: Any, data: st.DataObject) -> None:
    """Deleting, changing or appending source rows not visible at t never changes the row for t."""
    timed = [i for i, r in enumerate(sc.spine) if r["t"] is not None]
    assume(timed)
    i = data.draw(st.sampled_from(timed))
    t = sc.spine[i]["t"]
    defs = without_label(sc.defs)
    before = build_oracle(defs, "ts", sc.sources, sc.spine, sc.column_types())
    mutated = mutate_invisible(sc.sources, {"uid": sc.spine[i]["uid"], "k2": sc.spine[i]["k2"]}, t, defs, data)
    after = build_oracle(defs, "ts", mutated, sc.spine, sc.column_types())
    for f in defs.training_sets["ts"].features:
        assert values_equal(before.rows[i][f], after.rows[i][f]), f


@settings(max_examples=150)
@given(scenarios(allow_naive=False), st.integers(0, 2**32))
def test_oracle_shuffle_preserving_event_time_ties_changes_nothing(sc: Any, seed: int) -> None:
    before = build_oracle(sc.defs, "ts", sc.sources, sc.spine, sc.column_types())
    shuffled = {n: order_preserving_shuffle(rows, seed) for n, rows in sc.sources.items()}
    after = build_oracle(sc.defs, "ts", shuffled, sc.spine, sc.column_types())
    assert before.columns == after.columns
    assert len(before.rows) == len(after.rows)
    for a, b in zip(before.rows, after.rows, strict=True):
        for c in before.columns:
            assert values_equal(a[c], b[c]), c



def test_nonexistent_local_time_is_an_error() -> None:
    t = datetime(2024, 3, 10, 2, 30)  # skipped by the spring-forward change in New York
    defs = make_defs([feature("c", "count")], tz="America/New_York")
    rows = [{"uid": 1, "k2": "p", "ts": t, "avail": t, "x": None, "n": None, "s": None}]
    with pytest.raises(ValueError, match="does not exist"):
        build_oracle(defs, "ts", {"ev": rows, "cb": []}, [srow(1, 10)])
