"""engine/windows.py against brute force: packed positions, the small-key test and the segment reductions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpipe.engine import kernels as K
from fpipe.engine import windows as W


def sorted_events(rng: np.random.Generator, n: int, keys: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    kid = rng.integers(0, keys, n)
    et = rng.integers(0, span, n)
    order = np.lexsort((et, kid))
    return kid[order], et[order]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 6), st.booleans())
def test_positions_match_brute_force(seed: int, n: int, keys: int, inclusive: bool) -> None:
    rng = np.random.default_rng(seed)
    kid_e, et = sorted_events(rng, n, keys, 50)
    kid_e = kid_e + 3  # spine keys below, inside and above the events' key range, some without events
    kid_s = rng.integers(0, keys + 6, 30)
    at = rng.integers(-10, 70, 30)
    finder = W.PositionFinder.packed(kid_e, et, kid_s)
    assert finder is not None
    got = finder.find(at, inclusive)
    earlier = finder.find(at - 5, inclusive)
    for i in range(kid_s.size):
        same = np.flatnonzero(kid_e == kid_s[i])
        before = et[same] <= at[i] if inclusive else et[same] < at[i]
        if same.size:
            want = same[0] + int(before.sum())
            assert got[i] == want, (i, kid_s[i], at[i])
        else:  # no events: an empty range wherever the window is
            assert got[i] == earlier[i]


def test_positions_give_up_when_keys_times_span_do_not_fit() -> None:
    kid = np.array([0, 1 << 20])
    et = np.array([0, 1 << 45])
    assert W.PositionFinder.packed(kid, et, kid) is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 60), st.integers(1, 5), st.integers(0, 4), st.integers(1, 30))
def test_big_keys_match_occupancy(seed: int, n: int, keys: int, limit: int, window: int) -> None:
    rng = np.random.default_rng(seed)
    kid, et = sorted_events(rng, n, keys, 100)
    want = set()
    for i in range(n):  # events j <= i of the same key with et_j >= et_i - w
        occupancy = int(((kid[: i + 1] == kid[i]) & (et[: i + 1] >= et[i] - window)).sum())
        if occupancy > limit:
            want.add(int(kid[i]))
    got = W.big_keys(kid, et, window, limit)
    assert sorted(want) == got.tolist() if limit > 0 else set(got.tolist()) == set(kid.tolist())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
@pytest.mark.parametrize("inclusive", [False, True])
def test_compute_matches_brute_force(dtype: type, inclusive: bool, threads: int) -> None:
    rng = np.random.default_rng(7)
    n, keys = 400, 7
    kid, et = sorted_events(rng, n, keys, 200)
    vis = et + rng.integers(0, 30, n)
    values = (rng.normal(0, 100, n) if dtype is np.float64 else rng.integers(-50, 50, n)).astype(dtype)
    valid = rng.random(n) > 0.2
    kid_s = rng.integers(0, keys, 150)
    t = rng.integers(0, 230, 150)
    order = np.lexsort((t, kid_s))
    kid_s, t = kid_s[order], t[order]
    finder = W.PositionFinder.packed(kid, et, kid_s)
    assert finder is not None
    hi = finder.find(t, inclusive)
    windows = (40, 15)  # two jobs (two windows) whose chunks share the threads
    aggs = {w: [W.WindowAgg(f"{a}{w}", a, a != "rows") for a in ("count", "sum", "mean", "min", "max", "rows")] for w in windows}
    for w in windows:
        aggs[w][-1] = W.WindowAgg(f"rows{w}", "count", False)
    every = [a for w in windows for a in aggs[w]]
    # the aggregations of a window share their n as direct_windows shares them (values here have nulls)
    out = W.empty_outputs(every, kid_s.size, values.dtype, [(w, a.reads_value) for w in windows for a in aggs[w]])
    assert len({id(n) for _, n in out.values()}) == 4 and out["rows40"][0] is out["rows40"][1]
    rows = np.arange(kid_s.size)
    jobs = [(t, finder.find(t - w, inclusive), hi, aggs[w], rows) for w in windows]
    saved = W.PAIRS_PER_CHUNK
    W.PAIRS_PER_CHUNK = 50  # several chunks
    try:
        W.compute(jobs, W.Events(vis, values, valid), inclusive, out, threads=threads)
    finally:
        W.PAIRS_PER_CHUNK = saved
    for w in windows:
        for i in range(kid_s.size):
            in_window = (kid == kid_s[i]) & ((et > t[i] - w) & (et <= t[i]) if inclusive else (et >= t[i] - w) & (et < t[i]))
            seen = in_window & (vis <= t[i] if inclusive else vis < t[i])
            xs = values[seen & valid]
            assert out[f"rows{w}"][1][i] == seen.sum() and out[f"rows{w}"][0][i] == seen.sum()
            assert out[f"count{w}"][1][i] == xs.size and out[f"count{w}"][0][i] == xs.size
            if xs.size:
                assert out[f"sum{w}"][0][i] == pytest.approx(float(xs.astype(np.float64).sum()), rel=1e-12, abs=1e-9)
                assert out[f"mean{w}"][0][i] == pytest.approx(float(xs.astype(np.float64).mean()), rel=1e-12, abs=1e-9)
                assert out[f"min{w}"][0][i] == xs.min() and out[f"max{w}"][0][i] == xs.max()
            else:
                assert out[f"sum{w}"][0][i] == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 40), st.integers(1, 6), st.booleans())
def test_range_counts_match_brute_force(seed: int, n: int, keys: int, inclusive: bool) -> None:
    """Label counts: events in (key, time) order (ties included), spine keys below, inside and above the
    events' key range, some without events; lo <= et < hi, or lo < et <= hi when inclusive."""
    rng = np.random.default_rng(seed)
    kid_e, et = sorted_events(rng, n, keys, 30)
    kid_e = kid_e + 3
    kid_s = rng.integers(0, keys + 6, 25)
    lo = rng.integers(-10, 40, 25)
    hi = lo + rng.integers(0, 15, 25)
    got = W.range_counts(kid_e, et, kid_s, lo, hi, inclusive)
    assert got is not None and got.dtype == np.int64
    for i in range(kid_s.size):
        same = kid_e == kid_s[i]
        inside = (et > lo[i]) & (et <= hi[i]) if inclusive else (et >= lo[i]) & (et < hi[i])
        assert got[i] == int((same & inside).sum()), (i, kid_s[i], lo[i], hi[i])


def test_range_counts_beyond_one_int64() -> None:
    """Keys x span too wide for an int64: groups of keys, same counts; None only when one key's span alone
    does not fit (then the caller's prefix tables answer)."""
    kid = np.array([0, 5, 1 << 20, 1 << 20])
    et = np.array([0, 7, 3, 1 << 45])
    got = W.range_counts(kid, et, np.array([0, 5, 1 << 20, 1 << 20, 9]), np.array([0, 0, 0, 4, 0]), np.array([1, 8, 1 << 46, 1 << 46, 9]), False)
    assert got is not None and got.tolist() == [1, 1, 2, 1, 0]
    assert W.range_counts(np.array([0, 1]), np.array([0, 1 << 62]), np.array([0]), np.array([0]), np.array([1]), False) is None
    none = np.array([], dtype=np.int64)
    assert W.range_counts(none, none, kid, et, et + 1, False).tolist() == [0, 0, 0, 0]
    assert isinstance(W.position_finder(kid, et, kid), W.GroupedFinder)  # the wide case took groups


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 9), st.booleans(), st.integers(6, 9))
def test_range_counts_in_groups_match_brute_force(seed: int, n: int, keys: int, inclusive: bool, bits: int) -> None:
    rng = np.random.default_rng(seed)
    kid_e, et = sorted_events(rng, n, keys, 40)
    kid_e = kid_e * 3 + 3
    kid_s = rng.integers(0, keys * 3 + 6, 25)
    lo = rng.integers(-10, 45, 25)
    hi = lo + rng.integers(0, 15, 25)
    saved = W.PACKED_BITS
    W.PACKED_BITS = bits
    try:
        got = W.range_counts(kid_e, et, kid_s, lo, hi, inclusive)
    finally:
        W.PACKED_BITS = saved
    if got is None:
        assert int(et.max()) - int(et.min()) + 1 > 1 << bits
        return
    for i in range(kid_s.size):
        inside = (et > lo[i]) & (et <= hi[i]) if inclusive else (et >= lo[i]) & (et < hi[i])
        assert got[i] == int(((kid_e == kid_s[i]) & inside).sum()), i


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 12), st.integers(1, 40), st.booleans(), st.integers(6, 9))
def test_grouped_positions_match_brute_force(seed: int, n: int, keys: int, span: int, inclusive: bool, bits: int) -> None:
    """With few packed bits, keys x span does not fit and the keys are searched in groups: positions must
    equal one (key, time) search, for spine keys below, inside and above the events' keys."""
    rng = np.random.default_rng(seed)
    kid_e, et = sorted_events(rng, n, keys, span)
    kid_e = kid_e * 3 + 5  # sparse keys: gaps between groups and inside them
    kid_s = rng.integers(0, keys * 3 + 10, 40)
    at = rng.integers(-5, span + 5, 40)
    saved = W.PACKED_BITS
    W.PACKED_BITS = bits  # 64 to 512 (key, time) values per int64 group
    try:
        finder = W.GroupedFinder.build(kid_e, et, kid_s)
        whole = W.PositionFinder.packed(kid_e, et, kid_s)
    finally:
        W.PACKED_BITS = saved
    if finder is None:  # only when a single key's span does not fit the bits
        assert int(et.max()) - int(et.min()) + 1 > 1 << bits
        return
    got = finder.find(at, inclusive)
    for i in range(kid_s.size):
        below = (kid_e < kid_s[i]) | ((kid_e == kid_s[i]) & ((et <= at[i]) if inclusive else (et < at[i])))
        assert got[i] == int(below.sum()), (i, kid_s[i], at[i])
    if whole is not None:  # when everything fits in one int64 the grouped search agrees with it
        assert got.tolist() == whole.find(at, inclusive).tolist()


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 400), st.integers(1, 5), st.booleans(), st.booleans(),
       st.sampled_from([1, 7, 1 << 22]))
def test_visible_in_ranges_matches_brute_force(seed: int, n: int, k: int, inclusive: bool, forward: bool,
                                               cells: int) -> None:
    """The first (forward) or last k visible positions of each range, however many rows are skipped and
    however few cells a round may examine (1: one position per row at a time)."""
    rng = np.random.default_rng(seed)
    vis = rng.integers(0, 100, n)
    m = 50
    lo = rng.integers(0, n + 1, m)
    hi = np.minimum(n, lo + rng.integers(0, 300, m))
    t = rng.integers(0, 110, m)
    saved = W.WALK_CELLS
    W.WALK_CELLS = cells
    try:
        rows, pos = W.visible_in_ranges(lo, hi, vis, t, inclusive, k, forward)
    finally:
        W.WALK_CELLS = saved
    got: dict[int, list[int]] = {}
    for r, p in zip(rows.tolist(), pos.tolist(), strict=True):
        got.setdefault(r, []).append(p)
    for i in range(m):
        span = range(lo[i], hi[i]) if forward else range(hi[i] - 1, lo[i] - 1, -1)
        want = [p for p in span if (vis[p] <= t[i] if inclusive else vis[p] < t[i])][:k]
        assert got.get(i, []) == want, (i, lo[i], hi[i], t[i])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.integers(1, 8), st.integers(1, 400))
def test_packed_sort_orders_and_positions_as_the_full_sort(seed: int, n: int, keys: int, span: int) -> None:
    """`kernels.sort_packed` (no key or time columns, the positions searched on its packed column through
    `PositionFinder.from_packed`) gives the rows, in the order, and the positions of `sort_by_key_time` and
    `position_finder`: ties in (key, time) keep input order, spine keys below, inside and above the events'."""
    rng = np.random.default_rng(seed)
    kid = rng.integers(0, keys, n) + 5
    et = rng.integers(0, span, n)  # few distinct times: many ties
    frame = pl.DataFrame({
        "_kid": kid, "_et": pl.Series(et * 1_000_000 + 10**15).cast(pl.Datetime("us", "UTC")),
        "_vis": rng.integers(0, 10**9, n), "_v": rng.normal(size=n), "_pos": np.arange(n, dtype=np.uint32),
    })
    saved = K.PACKED_SORT_MIN_ROWS  # not monkeypatch: Hypothesis runs many examples in one fixture scope
    K.PACKED_SORT_MIN_ROWS = 0
    try:
        got = K.sort_packed(frame, "_et", ["_vis", "_v"])
        full = K.sort_by_key_time(frame, "_et", ["_kid", "_et", "_vis", "_v"])
    finally:
        K.PACKED_SORT_MIN_ROWS = saved
    assert got is not None
    assert got.frame.columns == ["_vis", "_v", K.PACKED]
    order = np.lexsort((np.arange(n), et, kid))  # (key, time, input position)
    assert full.equals(frame.select("_kid", "_et", "_vis", "_v")[order])
    assert got.frame.select("_vis", "_v").equals(full.select("_vis", "_v"))
    kid_e, et_e = full.get_column("_kid").to_numpy(), full.get_column("_et").to_physical().to_numpy()
    packed = got.frame.get_column(K.PACKED).to_numpy()
    assert np.array_equal(packed, (kid_e - got.k0) * got.span + (et_e - got.t0))
    kid_s = rng.integers(0, keys + 10, 50)
    t = rng.integers(-2, span + 2, 50) * 1_000_000 + 10**15
    finder = W.PositionFinder.from_packed(packed, got.k0, got.k1, got.t0, got.span, kid_s)
    for inclusive in (False, True):  # brute force: the events before (key, t) (at or before when inclusive)
        before = (kid_e[None, :] < kid_s[:, None]) | (
            (kid_e[None, :] == kid_s[:, None]) & ((et_e[None, :] <= t[:, None]) if inclusive else (et_e[None, :] < t[:, None]))
        )
        assert np.array_equal(finder.find(t, inclusive), before.sum(axis=1))


def test_packed_sort_declines_what_it_cannot_pack() -> None:
    """None (the caller then sorts with keys and times): rows not in input order, a null key or time, too few
    rows, or keys x time span not below 2**bits."""
    frame = pl.DataFrame({
        "_kid": [3, 1, 2] * 20_000, "_et": pl.Series(list(range(60_000))).cast(pl.Datetime("us", "UTC")),
        "_v": [1.0] * 60_000, "_pos": list(range(60_000)),
    })
    assert K.sort_packed(frame, "_et", ["_v"]) is not None
    assert K.sort_packed(frame.reverse(), "_et", ["_v"]) is None
    assert K.sort_packed(frame.with_columns(pl.when(pl.col("_pos") == 7).then(None).otherwise("_kid").alias("_kid")), "_et", ["_v"]) is None
    assert K.sort_packed(frame.head(100), "_et", ["_v"]) is None
    assert K.sort_packed(frame, "_et", ["_v"], bits=17) is None  # 3 keys x 60,000 us >= 2**17
    assert K.sort_packed(frame, "_et", ["_v"], bits=18) is not None


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 300), st.integers(0, 40), st.integers(1, 6), st.integers(0, 120),
       st.sampled_from([1, 2]), st.booleans())
def test_covered_keeps_every_event_a_window_holds_and_drops_far_ones(
    seed: int, n: int, m: int, keys: int, reach: int, threads: int, stray_keys: bool
) -> None:
    """`covered` keeps every event with t - reach <= et <= t for a spine row of its key (whatever the bucket
    width), and drops every event farther than reach + 2 buckets from each such window: the buckets here are
    at most 32 microseconds (a time span under 2,000 over at most 64 buckets)."""
    rng = np.random.default_rng(seed)
    kid_e = rng.integers(0, keys + (3 if stray_keys else 0), n)  # stray: keys no spine row has
    et = rng.integers(-200, 1700, n)
    kid_s = rng.integers(0, keys, m)
    t = rng.integers(0, 1500, m)
    if seed % 2:  # in (key, time) order, as the engine's spine is; else in any order
        order = np.lexsort((t, kid_s))
        kid_s, t = kid_s[order], t[order]
    saved = W.COVER_BLOCK, W.COVER_THREADED, W.COVER_SLICE
    # several blocks per slice, several slices; threads > 1 read even a few events on the threads
    W.COVER_BLOCK, W.COVER_THREADED, W.COVER_SLICE = 7, 1, 23
    try:
        keep = W.covered(kid_e, et, kid_s, t, reach, threads)
    finally:
        W.COVER_BLOCK, W.COVER_THREADED, W.COVER_SLICE = saved
    assert keep is not None and keep.shape == (n,)
    for i in range(n):
        same = kid_s == kid_e[i]
        gap = t[same] - et[i]  # the event is in a window of row j iff 0 <= gap_j <= reach
        if ((gap >= 0) & (gap <= reach)).any():
            assert keep[i], (i, kid_e[i], et[i])
        if not ((gap >= -64) & (gap <= reach + 64)).any():
            assert not keep[i], (i, kid_e[i], et[i])


def test_covered_gives_up_on_keys_too_many_to_tabulate() -> None:
    kid = np.array([0, W.COVER_CELLS])
    assert W.covered(kid, np.array([0, 5]), kid, np.array([1, 6]), 3) is None
    assert W.covered(np.array([1, 2]), np.array([0, 5]), np.array([], dtype=np.int64), np.array([], dtype=np.int64), 3).tolist() == [False, False]


def test_cover_table_declines_times_beyond_int64() -> None:
    """A spine time within `reach` of the earliest int64 microsecond (year -290,308): no table, every event
    kept (the offsets from t - reach would not fit in int64; building them raised OverflowError)."""
    lo = int(np.iinfo(np.int64).min)
    kid_s, t_s = np.array([1, 2]), np.array([lo + 5, 0])
    assert W.CoverTable.build(kid_s, t_s, 100) is None
    assert W.covered(np.array([1]), np.array([0]), kid_s, t_s, 100) is None
    assert W.CoverTable.build(kid_s, np.array([lo + 200, 0]), 100) is not None
