"""Windowed aggregations of the keys that are not small (engine/direct.py has the small ones).

- min, max over a window: a rolling extreme over event time with the spine instants as markers (with a hop,
  plus the head of the window start's hop bucket), exact for every spine row without a *pending* row; rows
  with one are recomputed from their windows' events.
- the windowed aggregations without a faster kernel (min/max of strings and decimals; small keys' std/var;
  the rows a fast path cannot vouch for): the (spine row, in-window event) pairs, found as position ranges in
  the key's event-time order, aggregated by chunks.
(count, sum, mean, count_distinct use prefix tables, first/last_k a walk: engine/features.py.)

`sp` is always the entity's sorted spine (`EntitySpine.sorted`: `_row`, `_kid`, `_t`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Literal

import polars as pl

from fpipe.engine import kernels as K
from fpipe.engine.groups import EventGroup

# (alias, agg, has_value, k, ddof): one of several aggregations computed from the same pairs
ManyAggs = Sequence[tuple[str, str, bool, int | None, int]]


def rolls_over(value_dtype: pl.DataType) -> bool:
    """Values Polars' `rolling_min_by` / `rolling_max_by` take: integers and floats (not Decimal, not strings)."""
    return value_dtype.is_integer() or value_dtype.is_float()


def extreme_by_rank(value_dtype: pl.DataType) -> bool:
    """Values whose min/max are taken over their ranks (`EventGroup.ranked_values`): the ordered types the
    rolling kernels do not take."""
    if rolls_over(value_dtype):
        return False
    return value_dtype in (pl.String, pl.Boolean) or isinstance(value_dtype, pl.Decimal) or value_dtype.is_temporal()


def rolls(agg: str, window: timedelta | None, hop: timedelta | None, value_dtype: pl.DataType) -> bool:
    """Windowed aggregations computed by rolling over event time, with or without a hop (see `windowed_extreme`)."""
    if window is None:
        return False
    return agg in ("min", "max") and rolls_over(value_dtype)


def marker_frame(sp: pl.DataFrame, ev: pl.DataFrame, at: pl.Expr) -> pl.DataFrame:
    """Events (by event time) and the spine instants `at` as null-valued markers, sorted by key and time."""
    markers = sp.select(
        "_kid",
        at.alias("_time"),
        pl.lit(None, ev.schema["_v"]).alias("_v"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("_vis"),
        pl.lit(None, pl.Int64).alias("_one"),
        pl.col(K.ROW),
    )
    events = ev.select(
        "_kid", pl.col("_et").alias("_time"), "_v", "_vis", pl.lit(1, pl.Int64).alias("_one"),
        pl.lit(None, pl.Int64).alias(K.ROW),
    )
    # stable: among equal values at one instant (0.0 and -0.0) the rolling extreme keeps the first, so the
    # order of ties must not depend on the sort's threads
    return pl.concat([events, markers], how="vertical").sort(["_kid", "_time"], maintain_order=True)


def aggregate_many(
    joined: pl.DataFrame, agg: str, has_value: bool, k: int | None, ddof: int, many: ManyAggs | None,
) -> pl.DataFrame:
    """`agg` of the pairs per spine row, or each of `many` (giving `<alias>_v`, `<alias>_n`)."""
    if many is None:
        return K.aggregate_pairs(joined, agg, has_value, k, ddof)
    exprs: list[pl.Expr] = []
    for alias, a, hv, kk, dd in many:
        val, n = K.pair_agg_exprs(a, hv, kk, dd)
        exprs += [val.alias(f"{alias}_v"), n.alias(f"{alias}_n")]
    return joined.group_by(K.ROW, maintain_order=True).agg(exprs)


def window_aggregate(
    group: EventGroup,
    rows: pl.DataFrame,
    start: pl.Expr,
    end: pl.Expr,
    inclusive: bool,
    condition: K.CondBuilder,
    agg: str,
    has_value: bool,
    k: int | None = None,
    ddof: int = 1,
    many: ManyAggs | None = None,
) -> pl.DataFrame:
    """`agg` (or `many` aggregations, `(alias, agg, has_value, k, ddof)`, each giving `<alias>_v`,
    `<alias>_n`) over the (spine row, event) pairs of `rows` whose event is in the window [`start`, `end`)
    of event time ((`start`, `end`] when `inclusive`; `condition` is then applied: visibility, for a feature).

    Only the events in that event-time range are visited: with the key's events sorted by event
    time, the range is positions [count(et before start), count(et before end)), read from the running
    count table with two as-of lookups, so the cost is the number of in-window events, not the key's
    whole history. Pairs are built and aggregated chunk by chunk, so memory stays bounded.
    """
    table = group.prefix_table("_et", None, False)  # rows in (key, et, position) order, like `by_et`
    by_et = group.by_event_time()
    starts = group.key_starts()
    lo = K.lookup(rows, start, table, "_et", inclusive).get_column("_cn").fill_null(0)
    hi = K.lookup(rows, end, table, "_et", inclusive).get_column("_cn").fill_null(0)
    spans = rows.select(K.ROW, "_kid", K.T).with_columns(lo.alias("_lo"), hi.alias("_hi"))
    spans = spans.join(starts, on="_kid", how="left", maintain_order="left").filter(pl.col("_hi") > pl.col("_lo"))
    events = by_et.drop("_kid")
    parts = []
    sizes = (spans.get_column("_hi") - spans.get_column("_lo")).cum_sum()
    chunk_id = (sizes // K.PAIRS_PER_CHUNK).alias("_chunk")
    for part in spans.with_columns(chunk_id).partition_by("_chunk", maintain_order=True):
        idx = part.select(
            K.ROW, K.T, pl.int_ranges(pl.col("_start") + pl.col("_lo"), pl.col("_start") + pl.col("_hi")).alias("_g")
        ).explode("_g")
        joined = pl.concat([idx, events[idx.get_column("_g")]], how="horizontal")
        joined = joined.filter(condition(pl.col(K.T))).sort([pl.col(K.ROW), *K.order_keys()])
        parts.append(aggregate_many(joined, agg, has_value, k, ddof, many))
    if not parts:
        empty = pl.concat([rows.select(K.ROW, K.T).clear(), events.clear()], how="horizontal")
        return aggregate_many(empty, agg, has_value, k, ddof, many)
    return pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]


def rolling(group: EventGroup, sp: pl.DataFrame, specs: Sequence[tuple[str, timedelta, bool]]) -> None:
    """Fill `group.rolled` with each (agg, window, inclusive) of `specs` at the spine rows (one `select`)."""
    missing = [spec for spec in specs if spec not in group.rolled]
    if not missing:
        return
    if group.markers is None:
        group.markers = marker_frame(sp, group.events, pl.col(K.T))
    exprs = []
    for i, (agg, window, inclusive) in enumerate(missing):
        closed: Literal["left", "right"] = "right" if inclusive else "left"
        exprs.append(K.rolling(agg, "_time", window, closed).over("_kid").alias(f"_x{i}"))
    at_markers = group.markers.select(K.ROW, *exprs).filter(pl.col(K.ROW).is_not_null())
    aligned = sp.select(K.ROW).join(at_markers, on=K.ROW, how="left", maintain_order="left")
    for i, spec in enumerate(missing):
        group.rolled[spec] = aligned.get_column(f"_x{i}")


def windowed_extreme(
    group: EventGroup,
    sp: pl.DataFrame,
    agg: str,
    window: timedelta,
    inclusive: bool,
    condition: K.CondBuilder,
    dtype: pl.DataType,
    hop: timedelta | None = None,
) -> tuple[pl.Series, pl.Series, pl.DataType]:
    """min and max over a window, with or without a hop.

    A rolling extreme over event time (the spine instants inserted as markers) is exact for every
    spine row with no *pending* row: a row whose event time is inside the window but which is not yet
    visible at t. The rolling max of `_vis` over the same window tells exactly which spine rows have
    one (max `_vis` >= t, or > t with an inclusive cutoff); those are recomputed by the pairs kernel.
    A hop window [s, t) (s = t - w rounded down to the hop) is the rolled [t - w, t) and its head
    [s, t - w), which `bucket_head` reads with its extreme, count and latest `_vis` alike.
    (Sums are not rolled: a rolling sum subtracts the rows leaving the window and keeps their
    rounding error; compensated prefix sums do not.)
    """
    rolling(group, sp, [("count", window, inclusive), ("max_vis", window, inclusive), (agg, window, inclusive)])
    n = group.rolled[("count", window, inclusive)].fill_null(0).cast(pl.Int64)
    value = group.rolled[(agg, window, inclusive)]
    max_vis = group.rolled[("max_vis", window, inclusive)]
    if hop is not None:
        h_value, h_n, h_vis = bucket_head(group, sp, agg, window, hop, inclusive)
        pick = pl.max_horizontal if agg == "max" else pl.min_horizontal
        both = pl.DataFrame({"a": value, "b": h_value, "va": max_vis, "vb": h_vis})
        joined = both.select(pick("a", "b").alias("x"), pl.max_horizontal("va", "vb").alias("vis"))
        value, max_vis, n = joined.get_column("x"), joined.get_column("vis"), n + h_n
    t_s = sp.get_column(K.T)
    pending = (max_vis > t_s if inclusive else max_vis >= t_s).fill_null(False)
    value, n = recompute_rows(group, sp, pending, value, n, window, inclusive, condition, agg, hop=hop)
    value = pl.select(pl.when(n > 0).then(value).otherwise(None)).to_series()
    return value.cast(dtype), n, dtype


def bucket_head(
    group: EventGroup, sp: pl.DataFrame, agg: str, window: timedelta, hop: timedelta, inclusive: bool,
) -> tuple[pl.Series, pl.Series, pl.Series]:
    """(extreme, row count, latest `_vis`) per spine row of the events in the head [s, t - w) of its hop window
    ((s, t - w] inclusive), visible or not. s = t - w rounded down to the hop, so t - w < s + hop: the head's
    events are those of the hop bucket [s, s + hop) of event time ((s, s + hop] inclusive) that come before
    t - w (at or before it). So: running extremes per (key, bucket) in event-time order, one as-of lookup at
    t - w. O((n+m) log)."""
    bucket = K.hop_bucket(hop, inclusive)
    kid = pl.col("_kid")
    # (key, bucket) ids in (key, event time) order: both only grow within a key
    gid = ((kid != kid.shift(1)) | (bucket != bucket.shift(1))).fill_null(True).cum_sum().cast(pl.Int64)
    running = pl.col("_v").cum_max() if agg == "max" else pl.col("_v").cum_min()
    table = group.by_event_time().select(kid, bucket.alias("_b"), gid.alias("_g"), "_et", "_v", "_vis").with_columns(
        running.over("_g").alias("_x"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("_g").alias("_cn"),
        pl.col("_vis").cum_max().over("_g").alias("_mv"),
    )
    buckets = table.select("_kid", "_b", "_g").unique("_g", keep="first", maintain_order=True)
    t = pl.col(K.T)
    rows = K.rows_by_bucket(sp, t, window, hop, buckets)
    found = K.lookup(rows, t - pl.lit(window), table.select(pl.col("_g").alias("_kid"), "_et", "_x", "_cn", "_mv"), "_et", inclusive)
    return found.get_column("_x"), found.get_column("_cn").fill_null(0), found.get_column("_mv")


def pairs_of(
    group: EventGroup, rows: pl.DataFrame, window: timedelta | None, hop: timedelta | None, inclusive: bool,
    condition: K.CondBuilder, agg: str, has_value: bool, k: int | None = None, ddof: int = 1,
) -> pl.DataFrame:
    """`agg` over the (spine row, event) pairs of `rows` (`_row`, value, n): the events in each row's window
    (`window_aggregate`), or, without a window, every event of its key."""
    if window is not None:
        t = pl.col(K.T)
        return window_aggregate(group, rows, K.window_start(t, window, hop), t, inclusive, condition, agg, has_value, k, ddof)
    return K.pairs(rows, group.events, ["_kid"], agg, condition=condition, has_value=has_value, k=k, ddof=ddof)


def recompute_rows(
    group: EventGroup, sp: pl.DataFrame, mask: pl.Series, value: pl.Series, n: pl.Series, window: timedelta | None,
    inclusive: bool, condition: K.CondBuilder, agg: str, ddof: int = 1,
    pairs: Callable[[pl.DataFrame], pl.DataFrame] | None = None, hop: timedelta | None = None,
) -> tuple[pl.Series, pl.Series]:
    """(value, n) over `sp` with the rows of `mask` recomputed exactly from their pairs (the rows a fast path
    cannot vouch for: pending rows of a rolling extreme, untrusted std/var): `pairs_of` their window (rounded
    to `hop`), or `pairs` (a label's forward window)."""
    if not mask.any():
        return value, n
    rows = sp.filter(mask)
    res = pairs(rows) if pairs is not None else pairs_of(group, rows, window, hop, inclusive, condition, agg, True, None, ddof)
    fixed = sp.select(K.ROW).join(res, on=K.ROW, how="left", maintain_order="left")
    value = pl.select(pl.when(mask).then(fixed.get_column(K.VAL)).otherwise(value)).to_series()
    n = pl.select(pl.when(mask).then(fixed.get_column(K.N).fill_null(0)).otherwise(n)).to_series()
    return value, n
