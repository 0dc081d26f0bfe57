"""Windowed features of spine rows whose windows hold few events, by direct enumeration of their windows.

- count/sum/mean/min/max (`direct_windows`, engine/windows.py): a spine row is small for a window when that
  window holds at most `features.DIRECT_WINDOW_EVENTS` events of its key (the row's own window decides).
- the other aggregations (`window_pairs_if_cheap`): the same pairs gathered into Polars and one group-by,
  for the rows of keys whose events never number more than `features.SMALL_KEY_EVENTS` inside one window
  (`small_rows`, decided from the key's own events).
Either way a row takes the same path in a backfill, in `explain` and in every partition. Each returns
`Direct` results per (feature, window); the other rows are computed apart by
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
    """Results of one windowed feature for its small spine rows (`small`), and the event group they were
    computed from (the other rows are computed from the same events, see `_big_keys_part`)."""

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


@dataclass
class WindowEvents:
    """The events some window may hold (`window_events`), in (key, event time, input position) order."""

    frame: pl.DataFrame  # `_vis`, `_v`; and `_kid`, `_et` when `finder` is None (the as-of lookups read them)
    finder: W.PositionFinder | W.GroupedFinder | None  # positions in that order (None: too many key groups)
    total: int  # the group's events (a lazy plan's count would be one more pass over the source: 0.035 s at M)


def window_events(group: EventGroup, kid_s: np.ndarray, t_s: np.ndarray, reach: timedelta) -> WindowEvents:
    """The group's events that some spine row (keys `kid_s`, times `t_s` in microseconds) may hold in a window
    reaching `reach` back (`windows.covered`), in (key, event time, input position) order. Every window holds
    the same events as among all the group's events, in the same order, so its values are the same bits; the
    others are not sorted (at M: 4.5M of 8.5M kept, the sort 1.05 -> 0.5 s).

    When (key, time) packs into an int64 the sort keeps the packed value and the position searches read it
    (`K.sort_packed`); the key and the time are not recovered from it (0.1 s at M)."""
    ev = _unkeyed_window_events(group, kid_s, t_s, reach)
    if ev is not None:
        total = ev.height or group.height  # the group's own count only when no event is kept (rare)
    else:
        plan = group.plan.lazy() if isinstance(group.plan, pl.DataFrame) else group.plan
        ev = plan.select("_kid", "_et", "_vis", "_v", "_pos").collect(engine="in-memory")
        keep = W.covered(ev.get_column("_kid").to_numpy(), us(ev.get_column("_et")), kid_s, t_s, window_us(reach), W.threads())
        total = ev.height
        if keep is not None and not keep.all():
            ev = ev.filter(pl.Series(keep))
    packed = K.sort_packed(ev, "_et", ["_vis", "_v"], bits=W.PACKED_BITS) if ev.height else None
    if packed is not None:
        finder = W.PositionFinder.from_packed(
            packed.frame.get_column(K.PACKED).to_numpy(), packed.k0, packed.k1, packed.t0, packed.span, kid_s
        )
        return WindowEvents(packed.frame.select("_vis", "_v"), finder, total)
    by_et = K.sort_by_key_time(ev, "_et", ["_kid", "_et", "_vis", "_v"])
    finder_or_none = W.position_finder(by_et.get_column("_kid").to_numpy(), us(by_et.get_column("_et")), kid_s)
    return WindowEvents(by_et, finder_or_none, total)


def _unkeyed_window_events(group: EventGroup, kid_s: np.ndarray, t_s: np.ndarray, reach: timedelta) -> pl.DataFrame | None:
    """`_kid`, `_et`, `_vis`, `_v`, `_pos` of the group's events that `windows.covered` keeps, in input order, by
    one filter of the rows before the key-set test (`events.Unkeyed`): `covered` keeps only spine keys, so it
    is that test too. None when the group has no such rows, or `covered` does not tabulate the keys (then
    the plan's own rows are filtered). The keys and times are read slice by slice where the source holds
    them (`CoverTable.keeps_read`: no copy of whole columns). M: no copy of the 8.5M events before the 4.5M
    kept: 0.12-0.18 s, and the backfill's peak RSS 1303 -> 1156 MiB."""
    u = group.unkeyed
    if u is None or kid_s.size == 0 or int(kid_s.min()) == W.INT64_MIN:
        return None
    table = W.CoverTable.build(kid_s, t_s, window_us(reach))
    if table is None:
        return None
    # a Series cast to its own type keeps its chunks (a `select` of the cast would concatenate them: 0.065 s)
    kid, et = u.frame.get_column("_k0").cast(pl.Int64), u.frame.get_column("_et").to_physical()
    # a null key or time is never one of the group's events (`keep`): a key below the spine's and a time of 0
    # only keep `covered` from reading them
    below = int(kid_s.min()) - 1

    def read(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:  # a slice inside one chunk: to_numpy copies none
        k, e = kid.slice(a, b - a), et.slice(a, b - a)
        return (k.fill_null(below) if k.null_count() else k).to_numpy(), (e.fill_null(0) if e.null_count() else e).to_numpy()

    kept = table.keeps_read(kid.len(), read, W.threads())
    return (
        u.frame.lazy().filter(u.keep & pl.lit(pl.Series(kept)))
        .select(u.kid, "_et", "_vis", "_v", "_pos").collect(engine="in-memory")
    )


def direct_windows(
    group: EventGroup, sp: pl.DataFrame, inclusive: bool, feats: Sequence[FeatureSpec], limit: int
) -> dict[tuple[str, timedelta], Direct]:
    """count/sum/mean/min/max of every window of `feats` (one base group: all rows, null values kept) for
    the spine rows whose window holds at most `limit` events (engine/windows.py): one enumeration per window.

    Which rows those are is decided by each row's own window (its count of events by event time, visible or
    not), so a row takes the same path in a backfill, in `explain` and in every partition, and its float
    sums are the same bits; the other rows are computed apart (`EntityFeatures._big_keys_part`)."""
    done: dict[tuple[str, timedelta], Direct] = {}
    m = sp.height
    if m == 0:
        return done
    windows = sorted(
        {(f.window, f.hop) for f in feats if f.window is not None},
        key=lambda wh: (wh[0] + (wh[1] or timedelta(0)), str(wh)), reverse=True,
    )
    if not windows:
        return done
    # every event of a window lies within its length plus its hop before t (its start is rounded down)
    reach = max(window + (hop or timedelta(0)) for window, hop in windows)
    t_s = us(sp.get_column(K.T))
    kid_s = sp.get_column("_kid").to_numpy()
    we = window_events(group, kid_s, t_s, reach)
    if we.total == 0:
        return done
    by_et, finder = we.frame, we.finder
    v = by_et.get_column("_v")
    # sum/mean/min/max read the (numeric, by `windows.supported`) values; a count of a column of any type
    # reads only which rows have one (a Null-typed column has none)
    reads_values = any(f.agg != "count" for f in feats)
    values = v.fill_null(0).to_numpy() if reads_values else None
    has_column = any(f.column is not None for f in feats)
    valid = v.is_not_null().to_numpy() if has_column and v.null_count() else None
    vis = us(by_et.get_column("_vis"))
    if finder is None:  # too many key groups (a time span of millennia): as-of lookups on a global position table
        starts = np.searchsorted(by_et.get_column("_kid").to_numpy(), kid_s, side="left")
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

    aggs = [W.WindowAgg(f"_f{i}", f.agg or "", f.column is not None) for i, f in enumerate(feats)]
    # the aggregations of one window share their count of rows (`_chunk` counts once per window and per
    # "reads values", and only when the values have nulls does that differ from counting rows)
    share = [(f.window, f.hop, a.reads_value and valid is not None) for a, f in zip(aggs, feats, strict=True)]
    out = W.empty_outputs(aggs, m, values.dtype if values is not None else np.dtype(np.int64), share)
    events = W.Events(vis, values, valid)
    threads = W.threads()
    # the binary searches (one per window, and t) are numpy work that releases the GIL: run them side by side
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fpipe-positions") as pool:
        hi_job = pool.submit(position, None)
        lo_jobs = [pool.submit(position, window, hop) for window, hop in windows]
        hi = hi_job.result()
        los = [job.result() for job in lo_jobs]
    jobs: list[W.Job] = []
    small_by_window: dict[tuple[timedelta, timedelta | None], np.ndarray] = {}
    for (window, hop), lo in zip(windows, los, strict=True):
        small = small_by_window[(window, hop)] = hi - lo <= limit  # at most `limit` pairs a row
        # rows with no event in the window keep the outputs' empty values (n = 0): only the others are enumerated
        rows = np.flatnonzero(small & (hi > lo))
        if rows.size:
            todo = [a for a, f in zip(aggs, feats, strict=True) if (f.window, f.hop) == (window, hop)]
            take: slice | np.ndarray = slice(None) if rows.size == m else rows  # every row: views, no gathers
            jobs.append((t_s[take], lo[take], hi[take], todo, rows))
    W.compute(jobs, events, inclusive, out, threads=threads)
    # the rows computed apart: not small for some window (a hop window's rounded start may lie after that of
    # a window of shorter reach, so no one window's rows contain the others'); one child serves them all
    others_np = np.zeros(m, dtype=bool)
    for small in small_by_window.values():
        others_np |= ~small
    others = pl.Series(others_np)
    for f, wa in zip(feats, aggs, strict=True):
        assert f.window is not None
        small_s = pl.Series(small_by_window[(f.window, f.hop)])
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
