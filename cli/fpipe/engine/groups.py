"""One event group: the events of one (source, entity, column, `where`) over one entity spine, and the sorted
tables built from them once and shared by every feature that reads them.

- `prefix_table`: running counts (and sums) per key in `_vis` or `_et` order, read by as-of lookups
  (count, sum, mean; the position ranges of windows).
- `lookup_table`: events ranked by (event time, available time, input position) and the running best rank
  per key in visibility order (latest, last, first and their time_since).
- `by_event_time`: the events in (key, event time, input position) order (windows).
Everything is sorted in a total order, so results do not depend on input order or partitioning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from fpipe.engine import kernels as K

if TYPE_CHECKING:
    from fpipe.engine.events import Unkeyed
    from fpipe.engine.features import EntityFeatures


def value_dtype_for_sum(dtype: pl.DataType) -> pl.DataType:
    """The type values are summed in: Int64 for integers and booleans (exact), else Float64."""
    return pl.Int64() if (dtype.is_integer() or dtype == pl.Boolean) else pl.Float64()


# integer types whose values may not fit the Int64 that sums are taken in (ids and hashes often are UInt64)
WIDE_INTEGERS = (pl.UInt64, pl.Int128, pl.UInt128)


def sums_in_int64(dtype: pl.DataType) -> bool:
    """Every value of `dtype` casts to the sum type without loss (a count may then share the sum's table)."""
    return dtype.is_numeric() and not isinstance(dtype, WIDE_INTEGERS)


@dataclass
class EventGroup:
    """The events of one group (`prepare_events`) and the tables and results cached on them.

    `plan` is the events, or the lazy filter that makes them: a group read only by the numpy windows
    (`direct.window_events`, which filters `unkeyed` or runs the plan for the five columns it needs) never
    keeps all its columns. `events` runs the plan once, on first use, and lets `unkeyed` go."""

    plan: pl.DataFrame | pl.LazyFrame
    prefix: dict[tuple[str, timedelta | None, bool], pl.DataFrame] = field(default_factory=dict)
    rolled: dict[tuple[str, timedelta, bool], pl.Series] = field(default_factory=dict)  # aligned with the spine
    markers: pl.DataFrame | None = None
    sorted_by: dict[str, pl.DataFrame] = field(default_factory=dict)  # events sorted by (_kid, on, _pos)
    max_late: timedelta | None = None  # the largest lateness `_vis - _et` of the events (None: not yet read)
    by_et: pl.DataFrame | None = None  # all event columns in (key, et, position) order
    by_et_narrow: pl.DataFrame | None = None  # `_kid`, `_et` in that order
    small: dict[tuple[timedelta, int], np.ndarray] = field(default_factory=dict)  # spine rows of small keys
    big: dict[tuple[Any, ...], tuple[EntityFeatures, EventGroup]] = field(default_factory=dict)  # the other keys
    starts: pl.DataFrame | None = None  # first position of each key in `by_et`
    ranked: pl.DataFrame | None = None  # events in the total order, ranked (`kernels.rank_events`)
    best: dict[str, pl.DataFrame] = field(default_factory=dict)  # running best rank per key, by `pick`
    key_ranked: pl.DataFrame | None = None  # `ranked` in key order (`by_key_rank`)
    moments: tuple[EventGroup, EventGroup] | None = None  # `_v` = x - c and its square (`moment_groups`)
    distinct: dict[str, tuple[EventGroup, EventGroup]] = field(default_factory=dict)  # count_distinct (`distinct_items`)
    value_ranks: tuple[EventGroup, pl.Series] | None = None  # `_v` as ranks, and the values (`ranked_values`)
    _height: int | None = None  # the plan's row count, while it is a plan
    unkeyed: Unkeyed | None = None  # the plan's rows before its key-set test (`events.Unkeyed`)

    @property
    def events(self) -> pl.DataFrame:
        """The events: the plan, run once (its inputs are then let go)."""
        if isinstance(self.plan, pl.LazyFrame):
            self.plan = self.plan.collect(engine="in-memory")
            self.unkeyed = None  # the events are at hand: `direct.window_events` filters them instead
        return self.plan

    @property
    def schema(self) -> pl.Schema:
        return self.plan.collect_schema()

    @property
    def height(self) -> int:
        if isinstance(self.plan, pl.DataFrame):
            return self.plan.height
        if self._height is None:
            self._height = int(self.plan.select(pl.len()).collect().item())
        return self._height

    def prefix_table(self, on: str, window: timedelta | None, with_value: bool) -> pl.DataFrame:
        """Prefix table over `on`, counting only the rows that can be in a window of length `window`
        (lateness `_vis - _et` < window; all rows when None)."""
        if on not in self.sorted_by:
            # ties ordered by input position: deterministic float sums
            cols = ["_kid", on, "_pos", "_v", (pl.col("_vis") - pl.col("_et")).alias("_late")]
            if on == "_et":
                self.sorted_by[on] = self.by_event_time().select(cols)
            else:
                self.sorted_by[on] = K.sort_by_key_time(self.events.select(cols), on)
        ev = self.sorted_by[on]
        if window is not None:
            if self.max_late is None:
                late = self.events.select((pl.col("_vis") - pl.col("_et")).max()).item()
                self.max_late = late if late is not None else timedelta(-1)  # no events: none is late
            if self.max_late < window:
                window = None  # no row is late enough to matter: share the unweighted table
        with_value = with_value or sums_in_int64(ev.schema["_v"])  # one table serves count and sum alike
        cache_key = (on, window, with_value)
        if cache_key not in self.prefix:
            if with_value:
                ev = ev.with_columns(pl.col("_v").cast(value_dtype_for_sum(ev.schema["_v"])))
            weight = (pl.col("_late") < pl.lit(window)) if window is not None else None
            self.prefix[cache_key] = K.prefix_table(ev, on, with_value, presorted=True, weight=weight)
        return self.prefix[cache_key]

    def lookup_table(self, pick: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(ranked events, running best rank per key in `_vis` order); `pick` "max" (latest, last) or "min" (first)."""
        if self.ranked is None:
            self.ranked = K.rank_events(self.events)
        if pick not in self.best:
            self.best[pick] = K.running_best(self.ranked, pick)
        return self.ranked, self.best[pick]

    def by_key_rank(self) -> pl.DataFrame:
        """The ranked events (`lookup_table`) per key: (key, event time, available time, input position) order,
        with the same key blocks and event-time counts as `by_event_time` (first, last_k over a window)."""
        if self.key_ranked is None:
            if self.ranked is None:
                self.ranked = K.rank_events(self.events)
            self.key_ranked = self.ranked.sort("_kid", maintain_order=True)
        return self.key_ranked

    def by_event_time(self, narrow: bool = False) -> pl.DataFrame:
        """The group's events in (key, event time, input position) order (sorted once); `narrow`: only `_kid`
        and `_et` are needed (`direct.small_rows`; sorting 2 columns of 10M rows costs far less than 7)."""
        if self.by_et is not None:
            return self.by_et
        if narrow:
            if self.by_et_narrow is None:
                self.by_et_narrow = K.sort_by_key_time(self.plan, "_et", ["_kid", "_et"])
            return self.by_et_narrow
        self.by_et = K.sort_by_key_time(self.events, "_et")
        self.by_et_narrow = None
        return self.by_et

    def moment_groups(self) -> tuple[EventGroup, EventGroup]:
        """The events with `_v` replaced by y = x - c, and by y^2, where c is the value of the key's first row to
        become visible (in (`_vis`, `_pos`) order): their compensated prefix sums give a window's sums of y and
        y^2 (std/var, `EntityFeatures._moments`). Shifting keeps y^2 near the spread of x, where x^2 would be
        swamped by its mean. c is one row's exact value, visible whenever the key has any visible row, so no
        later row changes a value (not even in its last bits) and every partitioning and `explain` agree."""
        if self.moments is None:
            x = pl.col("_v").cast(pl.Float64)
            first_visible = x.sort_by("_vis", "_pos").first().over("_kid")
            y = self.derived(lambda ev: ev.filter(pl.col("_v").is_not_null()).with_columns((x - first_visible).alias("_v")))
            self.moments = (y, y.derived(lambda ev: ev.with_columns(pl.col("_v") * pl.col("_v"))))
        return self.moments

    def ranked_values(self) -> tuple[EventGroup, pl.Series]:
        """The events with `_v` replaced by its dense rank among the group's distinct values (0-based, Int64;
        null stays null), and those values in rank order. min/max of an ordered type the rolling and running
        kernels do not take (strings, decimals, booleans, dates and times) is the value at the min/max of the
        ranks: Polars ranks and sorts by the same order its min/max compare by. O(n log n) once per group."""
        if self.value_ranks is None:
            values = self.events.get_column("_v").drop_nulls().unique().sort()
            ranked = self.derived(lambda ev: ev.with_columns((pl.col("_v").rank("dense").cast(pl.Int64) - 1).alias("_v")))
            self.value_ranks = (ranked, values)
        return self.value_ranks

    def derived(self, rows: Callable[[pl.DataFrame], pl.DataFrame]) -> EventGroup:
        """A group of `rows` of this one's events (a filter, a new `_v`: the row order kept), sorted by event
        time from the start when this one is (its `by_event_time` is then not sorted again)."""
        group = EventGroup(rows(self.by_et if self.by_et is not None else self.events))
        if self.by_et is not None:
            group.by_et = group.events
        return group

    def share_sorted(self, other: EventGroup) -> None:
        """Take `other`'s sorted tables for the ones not built yet, with `_v` squared: y^2's rows are y's
        (`moment_groups`), so its prefix tables need no sort of their own."""
        for on, frame in other.sorted_by.items():
            if on not in self.sorted_by:
                self.sorted_by[on] = frame.with_columns(pl.col("_v") * pl.col("_v"))
        if self.max_late is None:
            self.max_late = other.max_late

    def distinct_items(self, seen: str) -> tuple[EventGroup, EventGroup]:
        """Two groups of items whose windowed counts differ by the number of distinct values in a window:
        count_distinct over a window of length w at t, by the prefix tables of `count` (`_vis` as below).

        A row becomes known at `seen` (`_vis` for a feature; `_et` for a label, which ignores visibility). A value
        is in the window at t iff the largest event time among its rows known by t is in the window. Per (key,
        value), in order of `seen`, a *record* is a row whose event time exceeds every earlier one's: the largest
        event time known is that of the last record known. Each record is an item (+1, event time et_r, known
        at seen_r), and each record followed by another is an item (-1, et_r, known at the next record's seen):
        of one value's records known by t, those with event time in the window are a suffix (event times grow
        along them), and the -1 items cancel all of it but the last record. So the window's sum of the items
        (known by t, event time in the window) counts each value once if its last known record is in the
        window, else not at all. Every item is known no earlier than its event time, as the prefix tables need:
        O(n log n), no pairs. Returned as (the +1 items, the -1 items)."""
        if seen not in self.distinct:
            v = pl.col("_v")
            if self.schema["_v"].is_float():
                v = v + pl.lit(0.0, self.schema["_v"])  # -0.0 -> 0.0: one value, as `n_unique` counts it
            # by (key, value, seen): a multi-column sort, 2.7 s for 10M rows at M, where `.over([key, value])`
            # took 23 s with as many groups as rows
            ev = (
                self.events.filter(pl.col("_v").is_not_null())
                .select("_kid", v.alias("_v"), "_et", pl.col(seen).alias("_seen"), "_pos")
                .sort("_kid", "_v", "_seen", "_pos")
            )
            same = (pl.col("_kid") == pl.col("_kid").shift(1)) & (pl.col("_v") == pl.col("_v").shift(1))
            value_id = (~same.fill_null(False)).cum_sum().cast(pl.Int128)
            et = pl.col("_et").dt.epoch("us")
            # (value id, event time) packed so that one running max over the whole frame is each value's own
            span = ev.select(et.max() - et.min() + 1).item() or 1
            packed = value_id * span + (et - et.min())
            records = ev.filter((packed > packed.cum_max().shift(1)).fill_null(True))
            followed = (pl.col("_kid") == pl.col("_kid").shift(-1)) & (pl.col("_v") == pl.col("_v").shift(-1))
            replaced = records.select(
                "_kid", "_et", pl.col("_seen").shift(-1).alias("_vis"), "_pos", followed.fill_null(False).alias("_followed"),
            ).filter("_followed").drop("_followed")
            # two groups: a record's lateness is its row's (the same prefix tables serve every window), a
            # replaced record's spans the gap to the next one (its tables are weighted per window, and it is rarer)
            unvalued = pl.lit(None).alias("_v")  # counted, not summed
            self.distinct[seen] = (
                EventGroup(records.select("_kid", "_et", pl.col("_seen").alias("_vis"), "_pos", unvalued).sort("_pos")),
                EventGroup(replaced.with_columns(unvalued).sort("_pos")),
            )
        return self.distinct[seen]

    def key_starts(self) -> pl.DataFrame:
        """`_kid` -> `_start`, the first position of each key in `by_event_time()`."""
        if self.starts is None:
            self.starts = (
                self.by_event_time().select("_kid").with_row_index("_g").group_by("_kid")
                .agg(pl.col("_g").min().cast(pl.Int64).alias("_start"))
            )
        return self.starts
