"""Aggregation kernels: spine rows x source events -> one value per spine row.

Every kernel takes
  spine  : `_row`, `_t` (UTC) and `_kid` (the entity key, composite keys mapped to one integer id); only
           rows with a time and every key part, sorted by (`_kid`, `_t`)
  events : the normalised source rows of one feature (`where` applied, null keys, keys absent from the
           spine and never-visible rows removed): `_kid`, `_et`, `_avail`, `_vis`, `_pos`, `_v` (value or null)
and yields a value and `_n` (the number of rows the value was computed from; 0 means "empty", where the
caller applies the empty-window rule and `default`) per spine row.

Algorithms and costs (n events, m spine rows, both sorted once):
- cumulative  (count, sum, mean): prefix sums per key, read with two as-of lookups. O((n+m) log).
  A window of length w at t holds the rows with `_vis < t` and `t-w <= _et` (exclusive cutoff).
  A row whose lateness `_vis - _et` is >= w can never be in any window (it becomes visible after it
  left), so it is dropped; for the others `_et < t-w` implies `_vis < t`, hence
      window(t) = P_vis(t) - P_et(t - w)
  with P_vis the prefix over rows visible at t and P_et the prefix over rows with `_et < t-w`
  (`<=` and `<=` for an inclusive cutoff). Exact, not tiled.
- ordered     (latest, last, time_since_last; first/time_since_first without a window): the rows are
  ranked by the total order (event_time, available_time, input position); a running max (or min) of the
  rank in visibility order, read with one as-of lookup, is the winner among the rows visible at t.
  O((n+m) log).
- pairs       (`pairs`): joins each spine row with the events of its key and filters by a condition;
  exact for every aggregation, cost O(pairs), spine rows in chunks to bound memory. Windows take their
  pairs from one position range per row instead (engine/windowed.py), so they visit only in-window events;
  ARCHITECTURE.md lists which aggregations still use pairs at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl

from fpipe.spec.model import Cutoff

ROW = "_row"
T = "_t"
N = "_n"
VAL = "_val"
PAIRS_PER_CHUNK = 4_000_000

CondBuilder = Callable[[pl.Expr], pl.Expr]  # given the spine time expr, a boolean over event columns


def prefix_table(
    events: pl.DataFrame, on: str, with_value: bool, presorted: bool = False, weight: pl.Expr | None = None
) -> pl.DataFrame:
    """Per key (`_kid`), the running row count `_cn` (and value sum `_cs`) in `on` order.

    An as-of lookup takes the last row at or before an instant; among rows with the same instant that is
    the last one, whose running totals include all of them. `weight` (a boolean) leaves rows out of the
    totals without removing them from the table, which then needs no filtering and no new sort.
    """
    ev = events if presorted else events.sort(["_kid", on, "_pos"])
    if weight is None:
        count = pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("_kid")
    else:
        count = weight.cast(pl.Int64).cum_sum().over("_kid")
    cols = [pl.col("_kid"), pl.col(on), count.alias("_cn")]
    if not with_value:
        return ev.select(cols)
    value = pl.col("_v") if weight is None else pl.when(weight).then(pl.col("_v")).otherwise(pl.lit(0, ev.schema["_v"]))
    table = ev.select([*cols, value.alias("_x"), value.cum_sum().over("_kid").alias("_cs")])
    if not table.schema["_cs"].is_float():
        return table.drop("_x")
    # Compensated running sum: `_ce` accumulates the exact rounding error of each step of `_cs` (Knuth's
    # TwoSum; Polars' cum_sum is a sequential loop), so a difference of two prefixes is accurate to the
    # window's own magnitude instead of the key's whole history (1e12 outside a window of 0.1s).
    # (rows are in key blocks: the previous row's sum within the key is a plain shift, no window expression;
    # a window expression nested in `over` is evaluated group by group: 3.8 s instead of 0.4 s on 10M rows)
    kid = pl.col("_kid")
    prev = pl.when(kid == kid.shift(1)).then(pl.col("_cs").shift(1)).otherwise(0.0).fill_null(0.0)
    bp = pl.col("_cs") - pl.col("_prev")
    err = (pl.col("_prev") - (pl.col("_cs") - bp)) + (pl.col("_x") - bp)
    table = table.with_columns(prev.alias("_prev")).with_columns(err.alias("_e"))
    return table.with_columns(pl.col("_e").cum_sum().over("_kid").alias("_ce")).drop("_x", "_prev", "_e")


PACKED_SORT_MIN_ROWS = 50_000  # below this the three-column sort is as fast
PACKED_SORT_BITS = 62  # (key, time) packs into an int64 below 2**this, else into an Int128


PACKED = "_packed"  # the int64 (key, time) column of `sort_packed`: `packed_key_time` with the events' own
# smallest key and time and their time span, as `windows.PositionFinder` packs them


@dataclass
class PackedSort:
    """Rows sorted by (key, time, input position) without their key and time columns: `PACKED` holds
    (key - k0) * span + (time - t0) instead (an int64), with k0..k1 the rows' keys and t0 their first time
    in microseconds: `windows.PositionFinder.from_packed` searches it as it is."""

    frame: pl.DataFrame
    k0: int
    k1: int
    t0: int
    span: int


def _key_time_stats(frame: pl.DataFrame, on: str, pos: str) -> dict[str, Any]:
    """Row count, key and time (microseconds) ranges, nulls, and whether `pos` ever decreases."""
    t = pl.col(on).dt.epoch("us")
    st = frame.select(
        pl.len().alias("rows"),
        pl.col("_kid").min().alias("k0"), pl.col("_kid").max().alias("k1"), t.min().alias("t0"), t.max().alias("t1"),
        (pl.col("_kid").null_count() + pl.col(on).null_count()).alias("nulls"),
    ).row(0, named=True)
    st["unordered"] = not frame.get_column(pos).is_sorted()  # 0.002 s for 4.5M rows, a diff 0.03 s
    return st


def sort_by_key_time(
    frame: pl.DataFrame | pl.LazyFrame, on: str, columns: list[str] | None = None, pos: str = "_pos",
) -> pl.DataFrame:
    """`frame` (or its `columns`) sorted by (`_kid`, `on`, `pos`: the input position, `_row` for a spine);
    `frame` may be a lazy plan (a filter not yet run, `groups.EventGroup.plan`): only `columns` are then
    materialised, in sorted order.

    When the frame is already in `_pos` order (as every prepared event frame is), one stable sort of a
    packed (key, time) column gives the same order: an int64 when the key range times the time range fits
    in 62 bits, at less than half the cost of the three-column sort (PITFALLS: packed keys); else an Int128
    (10M rows: 1.6 s against 2.6 s for the three columns, measured under load).
    """
    if isinstance(frame, pl.DataFrame) and frame.height < PACKED_SORT_MIN_ROWS:
        return frame.sort(["_kid", on, pos]).select(columns or frame.columns)
    cols = columns or frame.collect_schema().names()
    df = _collected(frame, cols, on, pos)
    st = _key_time_stats(df, on, pos)
    if st["rows"] < PACKED_SORT_MIN_ROWS or st["nulls"] or st["k0"] is None or st["unordered"]:
        return df.sort(["_kid", on, pos]).select(cols)
    span = int(st["t1"]) - int(st["t0"]) + 1
    keys = int(st["k1"]) - int(st["k0"]) + 1
    if keys * span >= 1 << PACKED_SORT_BITS:  # an Int128 (key, time): one column still sorts faster than three
        packed = packed_key_time(pl.col(on).dt.epoch("us"), int(st["k0"]), int(st["t0"]), keys, span)
        return df.lazy().select(*cols, packed.alias("_packed")).sort("_packed", maintain_order=True).select(cols).collect(engine="in-memory")
    # the key and the time are not carried through the sort: they are recovered from the packed value
    ordered = _packed_sort(df, on, [c for c in cols if c not in ("_kid", on)], st)
    key = (pl.col(PACKED) // span + st["k0"]).cast(df.schema["_kid"]).alias("_kid")
    time = (pl.col(PACKED) % span + st["t0"]).cast(df.schema[on]).alias(on)
    return ordered.frame.with_columns(key, time).select(cols)


def sort_packed(
    frame: pl.DataFrame | pl.LazyFrame, on: str, carried: list[str], bits: int = PACKED_SORT_BITS, pos: str = "_pos"
) -> PackedSort | None:
    """`carried` columns of `frame` in (`_kid`, `on`, `pos`) order, with the packed (key, time) and no key or
    time columns (`PackedSort`): `sort_by_key_time` without recovering the key and the time from the packed
    value (0.1 s for 4.5M rows), for callers that only search positions. None where `sort_by_key_time` would
    not pack into an int64 (fewer than `PACKED_SORT_MIN_ROWS` rows, a null key or time, rows not in `pos`
    order), or when keys x time span is not below 2**`bits`."""
    df = _collected(frame, carried, on, pos)
    st = _key_time_stats(df, on, pos)
    if st["rows"] < PACKED_SORT_MIN_ROWS or st["nulls"] or st["k0"] is None or st["unordered"]:
        return None
    span = int(st["t1"]) - int(st["t0"]) + 1
    if (int(st["k1"]) - int(st["k0"]) + 1) * span >= 1 << min(bits, PACKED_SORT_BITS):
        return None
    return _packed_sort(df, on, carried, st)


def _collected(frame: pl.DataFrame | pl.LazyFrame, cols: list[str], on: str, pos: str) -> pl.DataFrame:
    """`frame` as a DataFrame; a lazy plan is run once, for `cols` and the sort's columns only."""
    if isinstance(frame, pl.DataFrame):
        return frame
    return frame.select(list(dict.fromkeys([*cols, "_kid", on, pos]))).collect(engine="in-memory")


def _packed_sort(df: pl.DataFrame, on: str, carried: list[str], st: dict[str, Any]) -> PackedSort:
    k0, t0 = int(st["k0"]), int(st["t0"])
    span = int(st["t1"]) - t0 + 1
    packed = packed_key_time(pl.col(on).dt.epoch("us"), k0, t0, int(st["k1"]) - k0 + 1, span)
    # in-memory engine: the streaming one returns many chunks here, and every later to_numpy would copy them
    ordered = df.lazy().select(*carried, packed.alias(PACKED)).sort(PACKED, maintain_order=True).collect(engine="in-memory")
    return PackedSort(ordered, k0, int(st["k1"]), t0, span)


def packed_key_time(time: pl.Expr, k0: int, t0: int, keys: int, span: int) -> pl.Expr:
    """(`_kid` - k0) * span + (time - t0), which orders exactly like (key, time): an Int64 when keys x span
    fits in `PACKED_SORT_BITS`, else an Int128 (cast before subtracting: ids spanning 2^63 do not wrap)."""
    if keys * span < 1 << PACKED_SORT_BITS:
        return (pl.col("_kid") - k0) * span + (time - t0)
    return (pl.col("_kid").cast(pl.Int128) - k0) * pl.lit(span, pl.Int128) + (time.cast(pl.Int128) - t0)


def lookup(spine_sorted: pl.DataFrame, at: pl.Expr, table: pl.DataFrame, on: str, inclusive: bool) -> pl.DataFrame:
    """For each spine row (sorted by `_kid`, `_t`), the table row of its key with `on < at` (`<=` when inclusive).

    `at` must be monotone in `_t` (t, t - w, t + h), so the spine stays sorted by (`_kid`, at): PITFALLS
    says both sides of a by-group as-of join must be sorted, and here both are by construction.
    """
    left = spine_sorted.select(pl.col("_kid"), at.alias("_at"))
    return left.join_asof(
        table,
        left_on="_at",
        right_on=on,
        by="_kid",
        strategy="backward",
        allow_exact_matches=inclusive,
        check_sortedness=False,
    )


def cumulative_from_tables(
    plus: pl.DataFrame, minus: pl.DataFrame | None, agg: str, value_dtype: pl.DataType | None
) -> tuple[pl.Series, pl.Series]:
    """count / sum / mean from the plus and minus lookups (aligned rows): returns (value, n)."""
    n = plus.get_column("_cn").fill_null(0)
    if minus is not None:
        n = n - minus.get_column("_cn").fill_null(0)
    if agg == "count":
        return n, n
    assert value_dtype is not None
    zero = pl.Series([0], dtype=value_dtype)
    s = plus.get_column("_cs").fill_null(zero[0])
    if minus is not None:
        s = s - minus.get_column("_cs").fill_null(zero[0])
    if "_ce" in plus.columns:  # compensated: add back the rounding errors of both running sums
        e = plus.get_column("_ce").fill_null(0.0)
        if minus is not None:
            e = e - minus.get_column("_ce").fill_null(0.0)
        s = s + e
    if agg == "sum":
        return s, n
    mean = pl.select(pl.when(n > 0).then(s.cast(pl.Float64) / n).otherwise(None)).to_series()
    return mean, n


def rolling(agg: str, by: str, window: timedelta, closed: Literal["left", "right"]) -> pl.Expr:
    """A rolling aggregate over the time column `by` (a window of `window` ending at each row). No sums:
    a rolling sum subtracts the rows that leave the window and keeps their rounding error."""
    v = pl.col("_v")
    if agg == "count":  # rows (events carry 1, markers null)
        return pl.col("_one").rolling_sum_by(by, window_size=window, closed=closed, min_samples=1)
    if agg == "max_vis":  # the latest availability among the window's rows
        return pl.col("_vis").rolling_max_by(by, window_size=window, closed=closed, min_samples=1)
    if agg == "max":
        return v.rolling_max_by(by, window_size=window, closed=closed, min_samples=1)
    if agg == "min":
        return v.rolling_min_by(by, window_size=window, closed=closed, min_samples=1)
    raise ValueError(f"no rolling kernel for {agg}")


def order_keys() -> list[pl.Expr]:
    """The total order of source rows: event time, then available time (a null one last), then input
    position. (Polars 2.1's multi-column sort with `nulls_last=True` was 16x slower on 10M rows than
    this explicit fill: measured 35.8 s vs 2.2 s.)"""
    last = pl.lit(datetime(9999, 12, 31, tzinfo=UTC)).cast(pl.Datetime("us", "UTC"))
    return [pl.col("_et"), pl.col("_avail").fill_null(last), pl.col("_pos")]


def rank_events(events: pl.DataFrame) -> pl.DataFrame:
    """Sort by the total order (event_time, available_time, input position); `_r` is the position in it.
    (Sorting by key first buys nothing: ranks are compared within a key, and equal event times of one key
    with different availabilities are common enough that a packed (key, time) sort needs the full sort.)"""
    order = events.select(pl.arg_sort_by(order_keys()).alias("_i")).get_column("_i")
    ranked = events.select("_kid", "_et", "_vis", "_v")[order]  # only what the lookups read
    return ranked.with_row_index("_r").with_columns(pl.col("_r").cast(pl.Int64))


def running_best(ranked: pl.DataFrame, pick: str) -> pl.DataFrame:
    """Per key, in visibility order, the running max (or min) rank: the winner among the rows visible so far.

    Sorted by a packed (key, visibility) column, an int64 when it fits, else an Int128 (the order among equal instants does not
    matter: a lookup reads the last of them, whose running value covers them all), and the running extreme
    taken in one pass over rank + a per-key offset that makes each key's values dominate the ones before
    it, instead of a grouped `cum_max().over(key)`."""
    table = ranked.select("_kid", "_vis", "_r")
    n = table.height
    running = pl.col("_r").cum_max() if pick == "max" else pl.col("_r").cum_min()

    def grouped() -> pl.DataFrame:  # small tables, or per-key rank offsets that would not fit in an int64
        return table.sort(["_kid", "_vis"]).select("_kid", "_vis", running.over("_kid").alias("_best"))

    if n == 0 or n < PACKED_SORT_MIN_ROWS:
        return grouped()
    vis = pl.col("_vis").dt.epoch("us")
    st = table.select(pl.col("_kid").min().alias("k0"), pl.col("_kid").max().alias("k1"), vis.min().alias("t0"), vis.max().alias("t1")).row(0, named=True)
    k0, keys, span = int(st["k0"]), int(st["k1"]) - int(st["k0"]) + 1, int(st["t1"]) - int(st["t0"]) + 1
    if keys * (n + 1) >= 1 << 62:
        return grouped()
    key = pl.col("_kid") - k0
    table = table.sort(packed_key_time(vis, k0, int(st["t0"]), keys, span))
    if pick == "max":  # later keys sit above every earlier rank
        best = (key * (n + 1) + pl.col("_r")).cum_max() - key * (n + 1)
    else:  # later keys sit below every earlier rank
        best = ((keys - key) * (n + 1) + pl.col("_r")).cum_min() - (keys - key) * (n + 1)
    return table.select("_kid", "_vis", best.alias("_best"))


def _chunks(spine: pl.DataFrame, events: pl.DataFrame, keys: list[str]) -> list[pl.DataFrame]:
    """Split the spine so that each chunk joins with at most ~PAIRS_PER_CHUNK event rows."""
    if spine.height == 0:
        return [spine]
    per_key = events.group_by(keys).agg(pl.len().alias("_ne")) if keys else None
    if per_key is None:
        cost = pl.Series([events.height] * spine.height)
    else:
        cost = spine.select(keys).join(per_key, on=keys, how="left", maintain_order="left")["_ne"].fill_null(0)
    cum = cost.cum_sum()
    chunk_id = (cum // PAIRS_PER_CHUNK).alias("_chunk")
    tagged = spine.with_columns(chunk_id)
    return [part.drop("_chunk") for part in tagged.partition_by("_chunk", maintain_order=True)]


def pairs(
    spine: pl.DataFrame,
    events: pl.DataFrame,
    keys: list[str],
    agg: str,
    *,
    condition: CondBuilder,
    has_value: bool,
    k: int | None = None,
    ddof: int = 1,
) -> pl.DataFrame:
    """Exact aggregation by joining each spine row with the events of its key (chunked)."""
    value_dtype = events.schema["_v"]
    ordered_events = events.sort(order_keys())
    parts = []
    for chunk in _chunks(spine.select([ROW, *keys, T]), ordered_events, keys):
        joined = pair_rows(chunk, ordered_events, keys, condition)
        parts.append(aggregate_pairs(joined, agg, has_value, k, ddof))
    schema: dict[str, pl.DataType] = {ROW: pl.Int64(), VAL: agg_dtype(agg, value_dtype, has_value), N: pl.Int64()}
    if not parts:
        return pl.DataFrame(schema=schema)
    out = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
    return out.with_columns(pl.col(N).cast(pl.Int64))


def pair_rows(spine: pl.DataFrame, events: pl.DataFrame, keys: list[str], condition: CondBuilder) -> pl.DataFrame:
    """Every (spine row, event of its key) pair that satisfies `condition`, ordered within each spine row
    by (event_time, available_time, input position)."""
    if keys:
        joined = spine.select([ROW, *keys, T]).join(events, on=keys, how="inner", maintain_order="right_left")
    else:
        joined = spine.select([ROW, T]).join(events, how="cross")
    return joined.filter(condition(pl.col(T))).sort([pl.col(ROW), *order_keys()])


def aggregate_pairs(joined: pl.DataFrame, agg: str, has_value: bool, k: int | None = None, ddof: int = 1) -> pl.DataFrame:
    return joined.group_by(ROW, maintain_order=True).agg(pair_agg_exprs(agg, has_value, k, ddof))


def agg_dtype(agg: str, value_dtype: pl.DataType, has_value: bool) -> pl.DataType:
    """The result type of `agg` over values of `value_dtype` (`latest` keeps the value type: finish.output_dtype)."""
    if agg in ("count", "count_distinct"):
        return pl.Int64()
    if agg in ("mean", "std", "var", "time_since_last", "time_since_first"):
        return pl.Float64()
    if agg == "sum":
        return pl.Int64() if (value_dtype.is_integer() or value_dtype == pl.Boolean) else pl.Float64()
    if agg == "last_k":
        return pl.List(value_dtype)
    return value_dtype


def pair_agg_exprs(agg: str, has_value: bool, k: int | None, ddof: int) -> list[pl.Expr]:
    """`agg` over the (spine row, event) pairs of one group: the value (`VAL`) and the count it saw (`N`)."""
    v = pl.col("_v")
    nn = v.drop_nulls()
    n_values = v.count().cast(pl.Int64)  # non-null values
    n_rows = pl.len().cast(pl.Int64)
    et_nn = pl.col("_et").filter(v.is_not_null()) if has_value else pl.col("_et")
    n_for_time = n_values if has_value else n_rows
    if agg == "count":
        return [(n_values if has_value else n_rows).alias(VAL), (n_values if has_value else n_rows).alias(N)]
    if agg == "sum":
        return [nn.sum().alias(VAL), n_values.alias(N)]
    if agg == "mean":
        return [nn.mean().alias(VAL), n_values.alias(N)]
    if agg == "min":
        return [nn.min().alias(VAL), n_values.alias(N)]
    if agg == "max":
        return [nn.max().alias(VAL), n_values.alias(N)]
    if agg in ("std", "var"):
        x = nn.cast(pl.Float64)
        stat = x.std(ddof=ddof) if agg == "std" else x.var(ddof=ddof)
        return [pl.when(n_values >= ddof + 1).then(stat).otherwise(None).alias(VAL), n_values.alias(N)]
    if agg == "count_distinct":
        return [nn.n_unique().cast(pl.Int64).alias(VAL), n_values.alias(N)]
    if agg == "first":
        return [nn.first().alias(VAL), n_values.alias(N)]
    if agg == "last":
        return [nn.last().alias(VAL), n_values.alias(N)]
    if agg == "last_k":
        return [nn.tail(k or 1).alias(VAL), n_values.alias(N)]
    if agg == "time_since_last":
        last_et = et_nn.last()
        return [
            ((pl.col(T).first() - last_et).dt.total_microseconds().cast(pl.Float64) / 1e6).alias(VAL),
            n_for_time.alias(N),
        ]
    if agg == "time_since_first":
        first_et = et_nn.first()
        return [
            ((pl.col(T).first() - first_et).dt.total_microseconds().cast(pl.Float64) / 1e6).alias(VAL),
            n_for_time.alias(N),
        ]
    if agg == "latest":
        return [v.last().alias(VAL), n_rows.alias(N)]
    raise ValueError(f"unknown aggregation {agg}")



def seconds_between(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    return (later - earlier).dt.total_microseconds().cast(pl.Float64) / 1e6


def window_condition(cutoff: Cutoff, window: timedelta | None, hop: timedelta | None) -> CondBuilder:
    """Visible at t and inside the (possibly hop-rounded) window, as a filter over event columns."""
    inclusive = cutoff is Cutoff.INCLUSIVE

    def build(t: pl.Expr) -> pl.Expr:
        cond = pl.col("_vis") <= t if inclusive else pl.col("_vis") < t
        cond = cond & (pl.col("_et") <= t if inclusive else pl.col("_et") < t)
        if window is not None:
            start = window_start(t, window, hop)
            cond = cond & (pl.col("_et") > start if inclusive else pl.col("_et") >= start)
        return cond

    return build


def window_start(t: pl.Expr, window: timedelta, hop: timedelta | None) -> pl.Expr:
    """t - w, rounded down to a multiple of `hop` since the Unix epoch when a hop is set."""
    start = t - pl.lit(window)
    if hop is None:
        return start
    hop_us = hop // timedelta(microseconds=1)
    us = start.dt.epoch("us")
    floored = us - (us % hop_us)  # Python-style modulo: floors toward -inf for negative epochs too
    return pl.from_epoch(floored, time_unit="us").dt.replace_time_zone("UTC")


def hop_bucket(hop: timedelta, inclusive: bool) -> pl.Expr:
    """The hop bucket of a row's event time, as the epoch microseconds of its start s: [s, s + hop), or
    (s, s + hop] when `inclusive` (the windows' own edges). A hop window starting at s holds, of the rows before
    s + hop, exactly those of bucket s (`features._late_in_bucket`, `windowed.bucket_head`)."""
    hop_us = hop // timedelta(microseconds=1)
    et = pl.col("_et").dt.epoch("us") - (1 if inclusive else 0)  # (s, s + hop] -> [s, s + hop) when inclusive
    return et - et % hop_us


def rows_by_bucket(spine_sorted: pl.DataFrame, at: pl.Expr, window: timedelta, hop: timedelta, buckets: pl.DataFrame) -> pl.DataFrame:
    """Each spine row as the id `_g` of its (key, window start) bucket in `buckets` (`_kid`, `_b`, `_g`; null when
    the key has no row there), renamed `_kid`, with `_t`: ready for `lookup` in a table keyed by bucket id.
    Ids must grow with (key, bucket): the rows then stay sorted by (id, t), as the start grows with t."""
    return spine_sorted.select("_kid", window_start(at, window, hop).dt.epoch("us").alias("_b"), at.alias(T)).join(
        buckets, on=["_kid", "_b"], how="left", maintain_order="left",
    ).select(pl.col("_g").cast(pl.Int64).alias("_kid"), T)


def label_condition(cutoff: Cutoff, gap: timedelta, horizon: timedelta) -> CondBuilder:
    """Forward window over event time: t+gap <= et < t+gap+h (exclusive), t+gap < et <= t+gap+h (inclusive)."""
    inclusive = cutoff is Cutoff.INCLUSIVE

    def build(t: pl.Expr) -> pl.Expr:
        lo = t + pl.lit(gap)
        hi = t + pl.lit(gap + horizon)
        if inclusive:
            return (pl.col("_et") > lo) & (pl.col("_et") <= hi)
        return (pl.col("_et") >= lo) & (pl.col("_et") < hi)

    return build


def empty_value(agg: str, dtype: pl.DataType) -> Any:
    """The value of an empty window before `default`: 0 for count, count_distinct and sum; else null."""
    if agg in ("count", "count_distinct"):
        return 0
    if agg == "sum":
        return 0 if dtype.is_integer() else 0.0
    return None
