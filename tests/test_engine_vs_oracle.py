"""Hypothesis properties holding the engine (`build_frame`) to the brute-force oracle (tests/oracle.py).

Tiny data on a one-minute grid, so ties and boundary equalities are common. Nothing is de-duplicated
before comparing; floats compare within 1e-9 (relative and absolute), every other value exactly, and the
dtype family of every column is checked.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fpipe.engine.build import build_frame
from fpipe.spec.model import Cutoff
from oracle import build_oracle
from strategies import (
    Scenario,
    at,
    feature,
    frame_mismatches,
    label_specs,
    make_defs,
    mins,
    mutate_invisible,
    order_preserving_shuffle,
    scenarios,
    source_rows,
    spine_rows,
    spine_schema,
    to_frame,
    values_equal,
    without_label,
)

SPINE_COLUMNS = ["uid", "k2", "t"]


def run(sc: Scenario, sources: dict[str, list[dict[str, Any]]] | None = None, defs: Any = None):  # type: ignore[no-untyped-def]
    frames = Scenario(defs or sc.defs, sources or sc.sources, sc.spine, sc.naive, time_unit=sc.time_unit).source_frames()
    return build_frame(defs or sc.defs, "ts", sources=frames, spine=sc.spine_frame())


def explain(sc: Scenario) -> str:
    ts = sc.defs.training_sets["ts"]
    lines = [f"tz={sc.defs.timezone} naive={sc.naive} project cutoff={sc.defs.cutoff.value}"]
    for s in sc.defs.sources.values():
        lines.append(f"source {s.name}: available_time={s.available_time} lag={s.lag} cutoff={s.cutoff} "
                     f"observed_until={s.observed_until}")
    for n in ts.features:
        lines.append(f"feature {sc.defs.features[n]}")
    if ts.label:
        lines.append(f"label {sc.defs.labels[ts.label]}")
    for name, rows in sc.sources.items():
        lines.append(f"rows {name}:")
        lines.extend(f"  {i}: {r}" for i, r in enumerate(rows))
    lines.append("spine:")
    lines.extend(f"  {i}: {r}" for i, r in enumerate(sc.spine))
    return "\n".join(lines)


@settings(max_examples=500)
@given(scenarios(spine_kinds=("file", "file", "file", "source", "schedule")))
def test_engine_matches_oracle(sc: Scenario) -> None:
    check_matches_oracle(sc)


@settings(max_examples=100)
@given(scenarios(spine_kinds=("file", "file", "source", "schedule"), max_rows=60, max_spine=25, max_minute=40))
def test_engine_matches_oracle_on_medium_data(sc: Scenario) -> None:
    """Fewer, larger cases (up to 60 + 40 source rows, 25 spine rows) for code paths that tiny data misses."""
    check_matches_oracle(sc)


@st.composite
def _arithmetic_scenarios(draw: st.DrawFn) -> Scenario:
    feats = [
        feature(f"f{i}", draw(st.sampled_from(["sum", "mean", "var", "std"])), "x",
                window=draw(st.sampled_from([mins(1), mins(2), mins(5)])),
                cutoff=draw(st.sampled_from([None, Cutoff.INCLUSIVE])))
        for i in range(draw(st.integers(1, 3)))
    ]
    rows = draw(source_rows())
    big_or_fine = st.one_of(st.sampled_from([1e12, -1e12, 1e12, 0.1, 0.7, None]),
                            st.floats(-10, 10, allow_nan=False, width=32))
    for r in rows:  # one entity, large magnitudes next to values with low-order bits
        r["uid"] = 1
        r["x"] = draw(big_or_fine)
    spine = [{**r, "uid": 1} for r in draw(spine_rows())]
    return Scenario(make_defs(feats), {"ev": rows, "cb": []}, spine)


@settings(max_examples=200)
@given(_arithmetic_scenarios())
def test_engine_window_arithmetic_matches_oracle(sc: Scenario) -> None:
    """Float sums/means/variances over windows, with values from 0.1 to 1e12: each window's value must be as
    exact as a direct computation over that window's rows (rows outside it must not add rounding error)."""
    check_matches_oracle(sc)


@st.composite
def _distinct_scenarios(draw: st.DrawFn) -> Scenario:
    """count_distinct over all history or a window: values from small alphabets, so the same value arrives
    several times, often late, in and out of event-time order."""
    feats = [
        feature(f"f{i}", "count_distinct", draw(st.sampled_from(["s", "n", "x"])),
                window=draw(st.sampled_from([None, None, mins(1), mins(2), mins(3), mins(5), mins(10)])),
                where=draw(st.sampled_from([None, None, "x > 0"])),
                cutoff=draw(st.sampled_from([None, Cutoff.EXCLUSIVE, Cutoff.INCLUSIVE])),
                default=draw(st.sampled_from([None, 7])))
        for i in range(draw(st.integers(1, 3)))
    ]
    rows = draw(source_rows(max_rows=30))
    for r in rows:
        r["x"] = draw(st.sampled_from([1.0, 2.0, -1.0, None]))
    return Scenario(make_defs(feats), {"ev": rows, "cb": []}, draw(spine_rows(max_rows=12)))


@settings(max_examples=200)
@given(_distinct_scenarios())
def test_engine_distinct_matches_oracle(sc: Scenario) -> None:
    """count_distinct without a window counts a value from its first *visible* row on (not its first by event
    time, nor its last to arrive): engine/features.py `_distinct_so_far`; over a window, a value counts while
    the latest event time among its visible rows is in the window (`EventGroup.distinct_items`)."""
    check_matches_oracle(sc)


@st.composite
def _moment_scenarios(draw: st.DrawFn) -> Scenario:
    """std/var windows of values that sit far from 0 (a large common offset, so x^2 swamps the spread), with
    outliers that drag a key's mean away from some of its windows: the prefix sums of `_moments` are
    trusted in some windows and must hand the others to the exact pairs."""
    feats = [
        feature(f"f{i}", draw(st.sampled_from(["std", "var"])), "x",
                window=draw(st.sampled_from([None, mins(2), mins(5), mins(10)])),
                cutoff=draw(st.sampled_from([None, Cutoff.INCLUSIVE])), ddof=draw(st.sampled_from([0, 1, 2])))
        for i in range(draw(st.integers(1, 3)))
    ]
    rows = draw(source_rows(max_rows=30))
    base = draw(st.sampled_from([0.0, 1e6, -1e9, 1e12]))
    noise = st.floats(-10, 10, allow_nan=False, width=32).map(lambda v: base + v)
    for r in rows:
        r["uid"] = draw(st.sampled_from([1, 2]))
        r["x"] = draw(st.one_of(noise, noise, st.sampled_from([None, base, 1e12, -1e12, 0.1])))
    spine = [{**r, "uid": draw(st.sampled_from([1, 2]))} for r in draw(spine_rows(max_rows=12))]
    return Scenario(make_defs(feats), {"ev": rows, "cb": []}, spine)


@settings(max_examples=300)
@given(_moment_scenarios())
def test_engine_moments_match_oracle(sc: Scenario) -> None:
    """std/var from compensated prefix sums where they are well conditioned, exact pairs elsewhere
    (engine/features.py `_moments`; run with every key big in tests/test_engine_paths.py)."""
    check_matches_oracle(sc)


@st.composite
def _hop_scenarios(draw: st.DrawFn) -> Scenario:
    """Windows with a `hop` (the start rounded down to a multiple of it, so a window is longer than its
    length), over rows often later than the window: such a row is left out of the prefix difference yet can
    be in a hop window, and is added back per hop bucket (engine/features.py `_late_in_bucket`)."""
    aggs = {"count": [None, "x"], "sum": ["x", "n"], "mean": ["x"], "count_distinct": ["s", "n"], "first": ["s"],
            "last": ["x"], "last_k": ["n"], "time_since_last": [None], "time_since_first": [None], "max": ["x", "n"], "min": ["x", "n"], "std": ["x", "n"], "var": ["x"]}
    feats = []
    for i in range(draw(st.integers(1, 4))):
        agg = draw(st.sampled_from(sorted(aggs)))
        feats.append(feature(f"f{i}", agg, draw(st.sampled_from(aggs[agg])), k=2 if agg == "last_k" else None,
                             window=mins(draw(st.sampled_from([1, 2, 3, 5]))), hop=mins(draw(st.sampled_from([2, 3, 4]))),
                             cutoff=draw(st.sampled_from([None, Cutoff.INCLUSIVE])), where=draw(st.sampled_from([None, "x > 0"]))))
    rows = [
        {"uid": draw(st.sampled_from([1, 2])), "k2": None, "ts": at(m), "avail": at(m + draw(st.sampled_from([0, 0, 1, 2, 4, 7, 12]))),
         "x": draw(st.sampled_from([1.0, 2.5, -1.0, 1e12, None])), "n": draw(st.sampled_from([1, 2, None])),
         "s": draw(st.sampled_from(["a", "b", None]))}
        for m in draw(st.lists(st.integers(0, 30), min_size=5, max_size=40))
    ]
    spine = [{"uid": draw(st.sampled_from([1, 2])), "k2": None, "t": at(m)} for m in draw(st.lists(st.integers(0, 40), min_size=2, max_size=12))]
    return Scenario(make_defs(feats), {"ev": rows, "cb": []}, spine)


@settings(max_examples=300)
@given(_hop_scenarios())
def test_engine_hop_windows_match_oracle(sc: Scenario) -> None:
    """Hop windows (count/sum/mean/count_distinct from prefix tables plus the late rows per bucket; first,
    last, last_k by the walk; min/max rolled plus the head of the start's bucket; std/var from prefix sums
    plus the late rows) against the oracle."""
    check_matches_oracle(sc)


@st.composite
def _label_scenarios(draw: st.DrawFn) -> Scenario:
    """Labels with full forward windows: the source is observed to minute 40 (so rows are rarely censored) and
    the events are dense, with repeated values, for every label aggregation (the general scenarios leave
    most label windows censored or empty: 29 non-empty label rows in 300 of them)."""
    lbl = replace(draw(label_specs()), observed_until=at(40), source="ev")
    rows = [
        {"uid": draw(st.sampled_from([1, 2, None])), "k2": draw(st.sampled_from(["p", "q"])), "ts": at(m),
         "avail": draw(st.sampled_from([at(m), at(m), at(m + 1), at(m + 3), None])),  # orders ties (labels ignore it)
         "x": draw(st.sampled_from([1.0, 2.0, -1.0, 0.5, None])), "n": draw(st.sampled_from([1, 2, 3, None])),
         "s": draw(st.sampled_from(["a", "b", "c", None]))}
        for m in draw(st.lists(st.integers(0, 30), min_size=20, max_size=50))
    ]
    spine = [{"uid": draw(st.sampled_from([1, 2])), "k2": draw(st.sampled_from(["p", "q", None])), "t": at(m)}
             for m in draw(st.lists(st.integers(0, 25), min_size=4, max_size=10))]
    return Scenario(make_defs([feature("f0", "count")], lbl), {"ev": rows, "cb": []}, spine)


@settings(max_examples=300)
@given(_label_scenarios())
def test_engine_labels_match_oracle(sc: Scenario) -> None:
    """Every label aggregation over the events of its forward window (engine/features.py `label`)."""
    check_matches_oracle(sc)


def check_matches_oracle(sc: Scenario) -> None:
    expected = build_oracle(sc.defs, "ts", sc.sources, sc.spine_rows(), sc.column_types(), SPINE_COLUMNS)
    res = run(sc)
    problems = frame_mismatches(res.frame, expected.columns, expected.rows, expected.families,
                                tolerances=expected.tolerances)
    if expected.censored:
        problems += [f"censored: {p}" for p in frame_mismatches(res.censored, SPINE_COLUMNS, expected.censored,
                                                                check_columns=False)]
    elif res.censored.height:
        problems.append(f"censored: {res.censored.height} rows, expected none")
    assert not problems, "\n".join(problems) + "\n" + explain(sc)


@settings(max_examples=120)
@given(scenarios(allow_naive=False), st.data())
def test_engine_no_leakage(sc: Scenario, data: st.DataObject) -> None:
    """Deleting, changing or appending source rows that are not visible at t never changes the row for t."""
    timed = [i for i, r in enumerate(sc.spine) if r["t"] is not None]
    assume(timed)
    i = data.draw(st.sampled_from(timed))
    t = sc.spine[i]["t"]
    defs = without_label(sc.defs)
    mutated = mutate_invisible(sc.sources, {"uid": sc.spine[i]["uid"], "k2": sc.spine[i]["k2"]}, t, defs, data)
    before = run(sc, defs=defs).frame
    after = run(sc, mutated, defs).frame
    tol = build_oracle(defs, "ts", sc.sources, sc.spine, sc.column_types(), SPINE_COLUMNS).tolerances[i]
    for f in defs.training_sets["ts"].features:
        if tol.get(f, 1e-9) == math.inf:
            continue
        a, b = before.get_column(f).to_list()[i], after.get_column(f).to_list()[i]
        assert values_equal(a, b, abs_=tol.get(f, 1e-9)), f"{f}: {a!r} -> {b!r} after changing invisible rows\n" + explain(sc)


@settings(max_examples=120)
@given(scenarios(), st.integers(0, 2**32))
def test_engine_shuffle_changes_nothing(sc: Scenario, seed: int) -> None:
    """A permutation of each source that keeps the relative order of rows with equal event time (the only
    rows whose order is a tie-break) changes no value."""
    shuffled = {n: order_preserving_shuffle(rows, seed) for n, rows in sc.sources.items()}
    before = run(sc)
    after = run(sc, shuffled)
    rows = before.frame.to_dicts()
    tolerances = build_oracle(sc.defs, "ts", sc.sources, sc.spine, sc.column_types(), SPINE_COLUMNS).tolerances
    problems = frame_mismatches(after.frame, before.frame.columns, rows,
                                tolerances=tolerances if len(tolerances) == len(rows) else None)
    assert not problems, "\n".join(problems) + "\n" + explain(sc)
    assert before.censored.height == after.censored.height


@settings(max_examples=120)
@given(scenarios())
def test_engine_one_row_per_spine_row_in_spine_order(sc: Scenario) -> None:
    """Kept rows and censored rows together are exactly the spine, in spine order (nothing else dropped)."""
    res = run(sc)
    spine = to_frame(sc.spine, spine_schema(sc.naive))
    ts = sc.defs.training_sets["ts"]
    if ts.label is None or sc.defs.labels[ts.label].censor == "flag":
        assert res.frame.height == spine.height
        assert res.censored.height == 0
    assert res.frame.height + res.censored.height == spine.height
    assert res.frame.columns[:3] == SPINE_COLUMNS
    kept = res.frame.select(SPINE_COLUMNS).rows()
    dropped = res.censored.select(SPINE_COLUMNS).rows() if res.censored.height else []
    # the spine times as the engine reports them (UTC), then the keys as given
    want_times = res.frame.get_column("t").to_list() + (res.censored.get_column("t").to_list() if dropped else [])
    assert len(want_times) == spine.height
    k = d = 0
    for r in sc.spine:
        key = (r["uid"], r["k2"])
        if k < len(kept) and kept[k][:2] == key and _same_instant(kept[k][2], r["t"], sc):
            k += 1
        elif d < len(dropped) and dropped[d][:2] == key and _same_instant(dropped[d][2], r["t"], sc):
            d += 1
        else:
            raise AssertionError(f"spine row {r} is neither the next kept nor the next censored row\n" + explain(sc))
    assert (k, d) == (len(kept), len(dropped))


def _same_instant(got: Any, given_t: Any, sc: Scenario) -> bool:
    if got is None or given_t is None:
        return got is None and given_t is None
    if sc.naive:
        from zoneinfo import ZoneInfo

        given_t = given_t.replace(tzinfo=ZoneInfo(sc.defs.timezone))
    return bool(got == given_t)


@settings(max_examples=60)
@given(scenarios(spine_kinds=("file", "source", "schedule")))
def test_engine_is_deterministic(sc: Scenario) -> None:
    """The same inputs twice give identical frames (values, dtypes, order) and identical censored rows."""
    a, b = run(sc), run(sc)
    assert a.frame.equals(b.frame, null_equal=True) and a.frame.schema == b.frame.schema
    assert a.censored.equals(b.censored, null_equal=True)


@settings(max_examples=100)
@given(scenarios(allow_naive=False))
def test_engine_counts_what_it_promises(sc: Scenario) -> None:
    """SPEC: censored rows, spine rows with a null time or key, never-visible rows (null event or available
    time) and NaN read as null are all counted."""
    res = run(sc)
    st_ = res.stats
    assert (st_.rows_in, st_.rows_out, st_.rows_censored) == (len(sc.spine), res.frame.height, res.censored.height)
    ts = sc.defs.training_sets["ts"]
    entities = {sc.defs.features[f].entity for f in ts.features if not sc.defs.features[f].is_derived}
    if ts.label:
        entities.add(sc.defs.labels[ts.label].entity)
    key_cols = sorted({c for e in entities if e for c in sc.defs.entities[e].keys})
    incomplete = sum(1 for r in sc.spine if r["t"] is None or any(r[c] is None for c in key_cols))
    assert st_.spine_rows_without_time_or_key == incomplete
    read = {sc.defs.features[f].source for f in ts.features if not sc.defs.features[f].is_derived}
    if ts.label and sc.defs.labels[ts.label].source:
        read.add(sc.defs.labels[ts.label].source)
    assert set(st_.sources) == read  # every source read is counted (the loop below checks each)
    for name, s in st_.sources.items():
        spec = sc.defs.sources[name]
        rows = sc.sources[name]
        never = sum(1 for r in rows if r["ts"] is None or (spec.available_time is not None and r["avail"] is None))
        assert s.never_visible == never, name
        nans = sum(1 for r in rows if isinstance(r["x"], float) and math.isnan(r["x"]))
        assert s.nan_as_null.get("x", 0) == nans, name
