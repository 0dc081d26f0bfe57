"""Windowed features of small keys by direct enumeration of their windows.

A key is small for a window w when its own events never number more than a limit inside one window of
length w (the limits are `features.DIRECT_WINDOW_EVENTS` and `features.SMALL_KEY_EVENTS`, passed in by
`EntityFeatures.precompute`). Decided from the key's own events only, so a row takes the same path in a
backfill, in `explain` and in every partition.
- count/sum/mean/min/max: position ranges and numpy segment reductions (engine/windows.py).
- the other aggregations: the same pairs gathered into Polars and one group-by (engine/windowed.py).
Each returns `Direct` results per (feature, window); the other keys' rows are computed apart by
`EntityFeatures._big_keys_part`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from fpipe.engine import kernels as K
from fpipe.engine import windows as W
from fpipe.engine.groups import EventGroup
from fpipe.engine.windowed import window_aggregate
from fpipe.spec.model import Cutoff, FeatureSpec


@dataclass
class Direct:
    """Results of one windowed feature for the spine rows of small keys (`small`), and the event group
    they were computed from (the other keys are computed from the same rows, see `_big_keys_part`)."""

    value: pl.Series
    n: pl.Series
    small: pl.Series
    group: EventGroup
    value_dtype: pl.DataType
    others: pl.Series  # the rows computed apart: a superset of ~small, shared by features that share `part`
    part: tuple[Any, ...]


def us(series: pl.Series) -> np.ndarray:
    """A UTC microsecond datetime series as int64 microseconds."""
    return series.to_physical().to_numpy()


def window_us(window: timedelta | None) -> int:
    assert window is not None
    return window // timedelta(microseconds=1)


def small_rows(group: EventGroup, sp: pl.DataFrame, window: timedelta, limit: int) -> np.ndarray:
    """Spine rows (of `sp`) whose key never has more than `limit` events
    inside one window (a bound on the pairs of any spine row of that key). Decided from the key's own
    events only, so a row takes the same path in a backfill, in `explain` (one spine row) and in every
    partition: float sums are bit-identical across them."""
    if (window, limit) not in group.small:
        # a key small for a window is small for every narrower one: when every row is small for a wider
        # window, it is for this one too (no search)
        for (w, lim), wider in group.small.items():
            if lim == limit and w >= window and wider.all():
                group.small[(window, limit)] = wider
                return wider
        by_et = group.by_event_time(narrow=True)
        kid = by_et.get_column("_kid").to_numpy()
        big = W.big_keys(kid, us(by_et.get_column("_et")), window_us(window), limit)
        group.small[(window, limit)] = W.small_rows(sp.get_column("_kid").to_numpy(), big)
    return group.small[(window, limit)]


def direct_windows(
    group: EventGroup, sp: pl.DataFrame, inclusive: bool, feats: Sequence[FeatureSpec], limit: int
) -> dict[tuple[str, timedelta], Direct]:
    """count/sum/mean/min/max of every window of `feats` (one base group: all rows, null values kept) for
    the spine rows whose key is small for that window (engine/windows.py): one enumeration per window."""
    done: dict[tuple[str, timedelta], Direct] = {}
    m = sp.height
    if m == 0 or group.height == 0:
        return done
    by_et = group.by_event_time(narrow=True)
    v = by_et.get_column("_v")
    # sum/mean/min/max read the (numeric, by `windows.supported`) values; a count of a column of any type
    # reads only which rows have one (a Null-typed column has none)
    reads_values = any(f.agg != "count" for f in feats)
    values = v.fill_null(0).to_numpy() if reads_values else None
    has_column = any(f.column is not None for f in feats)
    valid = v.is_not_null().to_numpy() if has_column and v.null_count() else None
    et, vis = us(by_et.get_column("_et")), us(by_et.get_column("_vis"))
    kid_e = by_et.get_column("_kid").to_numpy()
    t_s = us(sp.get_column(K.T))
    kid_s = sp.get_column("_kid").to_numpy()
    packed = by_et.get_column(K.PACKED).to_numpy() if K.PACKED in by_et.columns else None
    finder = W.position_finder(kid_e, et, kid_s, packed)
    if finder is None:  # too many key groups (a time span of millennia): as-of lookups on a global position table
        starts = np.searchsorted(kid_e, kid_s, side="left")
        ends = by_et.select("_kid", "_et", pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_cn"))

    def position(window: timedelta | None, hop: timedelta | None = None) -> np.ndarray:
        """Per spine row, one past the last event of its key with event time before the window start t - window,
        rounded down to a multiple of `hop` (at or before, inclusive), as a position in `by_et`."""
        if finder is not None:
            at = t_s - (window_us(window) if window else 0)
            if hop is not None:
                at = at - at % window_us(hop)  # floors toward -inf, as `kernels.window_start`
            return finder.find(at, inclusive)
        at_expr = K.window_start(pl.col(K.T), window, hop) if window else pl.col(K.T)
        found = K.lookup(sp, at_expr, ends, "_et", inclusive).get_column("_cn").fill_null(-1).to_numpy()
        return np.where(found < 0, starts, found)

    def reach(f: FeatureSpec) -> timedelta:
        """How far back a window of `f` reaches: its length, plus the hop its start may be rounded down by."""
        assert f.window is not None
        return f.window + (f.hop or timedelta(0))

    aggs = [W.WindowAgg(f"_f{i}", f.agg or "", f.column is not None) for i, f in enumerate(feats)]
    # the aggregations of one window share their count of rows (`_chunk` counts once per window and per
    # "reads values", and only when the values have nulls does that differ from counting rows)
    share = [(f.window, f.hop, a.reads_value and valid is not None) for a, f in zip(aggs, feats, strict=True)]
    out = W.empty_outputs(aggs, m, values.dtype if values is not None else np.dtype(np.int64), share)
    events = W.Events(vis, values, valid)
    small_by_reach: dict[timedelta, np.ndarray] = {}
    windows = sorted(
        {(f.window, f.hop) for f in feats if f.window is not None},
        key=lambda wh: (wh[0] + (wh[1] or timedelta(0)), str(wh)), reverse=True,
    )
    threads = W.threads()
    # the binary searches (one per window, and t) and the test of small keys for the widest reach (the
    # narrower ones mostly reuse it) are numpy work that releases the GIL: run them side by side
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fpipe-positions") as pool:
        widest = windows[0][0] + (windows[0][1] or timedelta(0)) if windows else None
        small_job = pool.submit(small_rows, group, sp, widest, limit) if widest is not None else None
        hi_job = pool.submit(position, None)
        lo_jobs = [pool.submit(position, window, hop) for window, hop in windows]
        hi = hi_job.result()
        los = [job.result() for job in lo_jobs]
        if small_job is not None:
            small_job.result()  # cached in the group: `small_rows` below returns it
    jobs: list[W.Job] = []
    for (window, hop), lo in zip(windows, los, strict=True):
        width = window + (hop or timedelta(0))  # every event of a hop window lies within this much before t
        small = small_by_reach.setdefault(width, small_rows(group, sp, width, limit))
        rows = np.flatnonzero(small)
        if rows.size:
            todo = [a for a, f in zip(aggs, feats, strict=True) if (f.window, f.hop) == (window, hop)]
            jobs.append((t_s[rows], lo[rows], hi[rows], todo, rows))
    W.compute(jobs, events, inclusive, out, threads=threads)
    # big for a window implies big for every wider one: the rows not small for the widest reach are
    # every row that any of these features computes apart, so one child serves them all
    others = pl.Series(~small_by_reach[max(small_by_reach)])
    for f, wa in zip(feats, aggs, strict=True):
        assert f.window is not None
        small_s = pl.Series(small_by_reach[reach(f)])
        if small_s.any():
            value, n = W.to_series(*out[wa.alias])
            dtype = v.dtype if f.column is not None else pl.Null()
            done[(f.name, f.window)] = Direct(value, n, small_s, group, dtype, others, ("direct", inclusive))
    return done


def window_pairs_if_cheap(
    group: EventGroup, sp: pl.DataFrame, window: timedelta, hop: timedelta | None, inclusive: bool,
    feats: Sequence[FeatureSpec], limit: int,
) -> dict[tuple[str, timedelta], Direct]:
    """Spine rows of small keys (see `small_rows`; for a hop window, small for its length plus the hop, as far
    back as its rounded start reaches) get every windowed aggregation of (`window`, `hop`) from one
    enumeration of their (spine row, in-window event) pairs and one group-by: cheaper than prefix tables
    and rolling passes when windows hold few events, and exact by construction."""
    done: dict[tuple[str, timedelta], Direct] = {}
    small = pl.Series(small_rows(group, sp, window + (hop or timedelta(0)), limit))
    if not small.any():
        return done
    condition = K.window_condition(Cutoff.INCLUSIVE if inclusive else Cutoff.EXCLUSIVE, window, hop)
    many = [(f"_f{i}", f.agg or "", f.column is not None, f.k, f.ddof) for i, f in enumerate(feats)]
    t = pl.col(K.T)
    res = window_aggregate(group, sp.filter(small), K.window_start(t, window, hop), t, inclusive, condition, "", False, many=many)
    aligned = sp.select(K.ROW).join(res, on=K.ROW, how="left", maintain_order="left")
    for i, f in enumerate(feats):
        done[(f.name, window)] = Direct(
            aligned.get_column(f"_f{i}_v"), aligned.get_column(f"_f{i}_n").fill_null(0), small, group,
            group.schema["_v"], ~small, ("pairs", window, hop, inclusive),
        )
    return done
