"""Aggregation kernels: spine rows x source events -> one value per spine row.

Every kernel takes
  spine  : `_row`, `_t` (UTC) and the key columns `_k0.._kn`; only rows with a time and every key part
  events : the normalised source rows of one feature (`where` applied, null keys and never-visible rows
           removed): `_k0.._kn`, `_et`, `_avail`, `_vis`, `_pos`, `_v` (the value column, or null)
and returns `_row`, `_val`, `_n` (the number of rows the value was computed from; 0 means "empty", where
the caller applies the empty-window rule and `default`).

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
- pairs       (everything else: min, max, std, var, count_distinct, last_k, windowed first, hop):
  joins each spine row with the events of its key and filters by the window; exact for every
  aggregation, cost O(pairs); spine rows are processed in chunks to bound memory.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import polars as pl

from fpipe.spec.model import Cutoff

ROW = "_row"
T = "_t"
N = "_n"
VAL = "_val"
PAIRS_PER_CHUNK = 4_000_000

CondBuilder = Callable[[pl.Expr], pl.Expr]  # given the spine time expr, a boolean over event columns


def _asof(left: pl.DataFrame, left_on: str, right: pl.DataFrame, right_on: str, keys: list[str], inclusive: bool) -> pl.DataFrame:
    """Backward as-of join; both sides sorted by (keys, time) first (see PITFALLS: unsorted by-groups)."""
    left = left.sort([*keys, left_on])
    right = right.sort([*keys, right_on])
    return left.join_asof(
        right,
        left_on=left_on,
        right_on=right_on,
        by=keys or None,
        strategy="backward",
        allow_exact_matches=inclusive,
        check_sortedness=False,
    )


def _prefix(events: pl.DataFrame, keys: list[str], on: str, value_dtype: pl.DataType | None) -> pl.DataFrame:
    """Per key, cumulative row count and value sum at each distinct `on` instant."""
    aggs = [pl.len().cast(pl.Int64).alias("_cn")]
    if value_dtype is not None:
        aggs.append(pl.col("_v").sum().alias("_cs"))
    g = events.group_by([*keys, on]).agg(aggs).sort([*keys, on])
    cums = [pl.col("_cn").cum_sum().over(keys) if keys else pl.col("_cn").cum_sum()]
    if value_dtype is not None:
        cums.append(pl.col("_cs").cum_sum().over(keys) if keys else pl.col("_cs").cum_sum())
    return g.with_columns(cums)


def cumulative(
    spine: pl.DataFrame,
    events: pl.DataFrame,
    keys: list[str],
    agg: str,
    *,
    plus: tuple[str, pl.Expr],
    minus: tuple[str, pl.Expr] | None,
    inclusive: bool,
    has_value: bool,
) -> pl.DataFrame:
    """count / sum / mean as P_plus(at) - P_minus(at), each a prefix over an event time column.

    `plus = (event column, spine instant expr)`; rows with column < instant (<= when inclusive) are summed.
    """
    value_dtype = events.schema["_v"] if (has_value and agg != "count") else None
    if value_dtype is not None:
        target: pl.DataType = pl.Int64() if value_dtype.is_integer() or value_dtype == pl.Boolean else pl.Float64()
        events = events.with_columns(pl.col("_v").cast(target))
        value_dtype = target
    base = spine.select([ROW, *keys, T])
    col_p, at_p = plus
    pre = _prefix(events, keys, col_p, value_dtype)
    left = base.with_columns(at_p.alias("_at"))
    out = _asof(left, "_at", pre, col_p, keys, inclusive).select(
        [ROW, pl.col("_cn").fill_null(0).alias("_np"), *([pl.col("_cs").alias("_sp")] if value_dtype else [])]
    )
    if minus is not None:
        col_m, at_m = minus
        pre_m = _prefix(events, keys, col_m, value_dtype)
        left_m = base.with_columns(at_m.alias("_at"))
        out_m = _asof(left_m, "_at", pre_m, col_m, keys, inclusive).select(
            [ROW, pl.col("_cn").fill_null(0).alias("_nm"), *([pl.col("_cs").alias("_sm")] if value_dtype else [])]
        )
        out = out.join(out_m, on=ROW, how="left")
    else:
        out = out.with_columns(pl.lit(0, pl.Int64).alias("_nm"))
        if value_dtype is not None:
            out = out.with_columns(pl.lit(None, value_dtype).alias("_sm"))
    n = (pl.col("_np") - pl.col("_nm")).alias(N)
    if agg == "count":
        return out.select([ROW, n.alias(VAL), n])
    assert value_dtype is not None
    s = pl.col("_sp").fill_null(0) - pl.col("_sm").fill_null(0)
    out = out.with_columns(n, s.alias("_s"))
    if agg == "sum":
        return out.select([ROW, pl.col("_s").alias(VAL), N])
    mean = pl.when(pl.col(N) > 0).then(pl.col("_s").cast(pl.Float64) / pl.col(N)).otherwise(None)
    return out.select([ROW, mean.alias(VAL), N])


def rank_events(events: pl.DataFrame) -> pl.DataFrame:
    """Add `_r`: the position of each row in the total order (event_time, available_time, input position)."""
    return events.sort(["_et", "_avail", "_pos"]).with_row_index("_r").with_columns(pl.col("_r").cast(pl.Int64))


def ordered(
    spine: pl.DataFrame,
    events: pl.DataFrame,
    keys: list[str],
    *,
    pick: str,
    inclusive: bool,
) -> pl.DataFrame:
    """The last (pick='max') or first (pick='min') visible row at t in the order of `rank_events`.

    Returns `_row`, `_et`, `_v` of the winner (nulls when none is visible).
    """
    ranked = rank_events(events)
    g = ranked.group_by([*keys, "_vis"]).agg(
        (pl.col("_r").max() if pick == "max" else pl.col("_r").min()).alias("_best")
    ).sort([*keys, "_vis"])
    running = pl.col("_best").cum_max() if pick == "max" else pl.col("_best").cum_min()
    g = g.with_columns(running.over(keys) if keys else running)
    hit = _asof(spine.select([ROW, *keys, T]), T, g, "_vis", keys, inclusive)
    winners = ranked.select(["_r", "_et", "_v"])
    return hit.select([ROW, T, "_best"]).join(winners, left_on="_best", right_on="_r", how="left")


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
    ordered_events = events.sort(["_et", "_avail", "_pos"])
    parts = []
    for chunk in _chunks(spine.select([ROW, *keys, T]), ordered_events, keys):
        if keys:
            joined = chunk.join(ordered_events, on=keys, how="inner", maintain_order="right_left")
        else:
            joined = chunk.join(ordered_events, how="cross")
        joined = joined.filter(condition(pl.col(T)))
        # rows in (event_time, available_time, input position) order within each spine row
        joined = joined.sort([ROW, "_et", "_avail", "_pos"])
        parts.append(joined.group_by(ROW, maintain_order=True).agg(_pair_aggs(agg, has_value, k, ddof)))
    schema: dict[str, pl.DataType] = {ROW: pl.Int64(), VAL: _out_dtype(agg, value_dtype, has_value), N: pl.Int64()}
    if not parts:
        return pl.DataFrame(schema=schema)
    out = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
    return out.with_columns(pl.col(N).cast(pl.Int64))


def _out_dtype(agg: str, value_dtype: pl.DataType, has_value: bool) -> pl.DataType:
    if agg in ("count", "count_distinct"):
        return pl.Int64()
    if agg in ("mean", "std", "var", "time_since_last", "time_since_first"):
        return pl.Float64()
    if agg == "sum":
        return pl.Int64() if (value_dtype.is_integer() or value_dtype == pl.Boolean) else pl.Float64()
    if agg == "last_k":
        return pl.List(value_dtype)
    return value_dtype


def _pair_aggs(agg: str, has_value: bool, k: int | None, ddof: int) -> list[pl.Expr]:
    v = pl.col("_v")
    nn = v.drop_nulls()
    n_values = v.count().cast(pl.Int64)  # non-null values
    n_rows = pl.len().cast(pl.Int64)
    secs = (pl.col(T).first() - pl.col("_et")).dt.total_microseconds().cast(pl.Float64) / 1e6
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
    del secs
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
