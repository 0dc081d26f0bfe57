"""Which source rows are behind one feature value at one instant (`fpipe explain`).

Given the normalised source (engine/visibility.py), one spine instant t and one entity's key, every
source row of that key (after the feature's `where`) gets a `_status`:

- `in window`      visible at t and inside the window: the aggregation used it;
- `null (ignored)` inside the window but its value is null: the aggregation skipped it;
- `won`            the row a lookup (`latest`) or `first`/`last`/`time_since_*` picked;
- `won, too old`   the `latest` winner is older than `ttl`: the value is the default;
- `candidate`      visible and eligible, but another row won;
- `not yet available`  its event time is inside the window (or before t) but it only became visible at
                   `_vis` >= t (exclusive cutoff): the rows a leaky pipeline would have used;
- `never visible`  null event or available time;
- `outside window` / `after t`: counted only.

The window and visibility rules are the engine's own (kernels.window_condition); "inside the window
ignoring availability" evaluates the same condition with `_vis` replaced by `_et`. The value itself is
not computed here: the caller computes it with the engine on a one-row spine, so it is backfill's value.

A training set's label (`explain_label_rows`): the key's label-source rows against the forward window of
kernels.label_condition over event time only -- `in label window`, `null (ignored)`, `before label window`,
`after label window`, `no event time`; availability plays no part (labels are ground truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl

from fpipe.engine import kernels as K
from fpipe.engine.expr import compile_expr
from fpipe.engine.timecols import UTC_US
from fpipe.spec.model import Cutoff, Definitions, FeatureSpec, LabelSpec

STATUS = "_status"
ORDER = ["won", "won, too old", "in window", "null (ignored)", "candidate", "not yet available", "never visible", "filtered by where", "outside window", "after t"]
LISTED = ("won", "won, too old", "in window", "null (ignored)", "candidate", "not yet available", "never visible")
LOOKUPS = {"latest", "last", "time_since_last", "first", "time_since_first"}


def key_match(frame: pl.DataFrame, cols: Sequence[str], values: Sequence[Any]) -> pl.Expr:
    cond = pl.lit(True)
    for c, v in zip(cols, values, strict=True):
        if v is None:
            return pl.lit(False)  # a null key never matches
        dtype = frame.schema[c]
        cond = cond & (pl.col(c) == pl.lit(v).cast(dtype, strict=False))
    return cond


def explain_rows(
    defs: Definitions,
    feature: FeatureSpec,
    normalised: pl.DataFrame,
    t: datetime | None,
    key_values: Sequence[Any],
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The key's source rows worth listing (every status but `outside window`, `after t`), with a `_status`,
    sorted by event time, then availability, then input order; and the count of every row of the key per
    status (each row counted once)."""
    assert feature.source is not None and feature.entity is not None and feature.agg is not None
    source = defs.sources[feature.source]
    key_cols = list(source.keys[feature.entity])
    counts: dict[str, int] = {}
    rows = _key_rows_where(normalised, key_cols, key_values, feature.where, counts)
    if t is None:  # a spine row without a time sees no rows
        status = pl.lit("after t")
        out = rows.with_columns(status.alias(STATUS))
        return _finish(out, counts)
    cutoff = defs.feature_cutoff(feature)
    inclusive = cutoff is Cutoff.INCLUSIVE
    tt = pl.lit(t).cast(UTC_US)
    agg = feature.agg
    ordered = agg in LOOKUPS
    window = None if agg == "latest" else feature.window
    cond = K.window_condition(cutoff, window, feature.hop if window is not None else None)
    in_range_visible = cond(tt)
    before_t = pl.col("_et") <= tt if inclusive else pl.col("_et") < tt
    has_value = feature.column is not None
    skips_nulls = has_value and (agg != "latest" or feature.skip_nulls)
    value_null = pl.col(feature.column).is_null() if has_value and feature.column else pl.lit(False)
    frame = rows.with_columns(in_range_visible.fill_null(False).alias("_in"))
    # the same window, ignoring availability (`_vis` := `_et`)
    in_et = frame.with_columns(pl.col("_et").alias("_vis")).select(cond(tt).fill_null(False)).to_series()
    frame = frame.with_columns(in_et.alias("_in_et"))
    never = pl.col("_vis").is_null()
    status = (
        pl.when(pl.col("_et").is_not_null() & ~before_t)
        .then(pl.lit("after t"))
        .when(never)
        .then(pl.lit("never visible"))
        .when(pl.col("_in") & value_null & pl.lit(skips_nulls))
        .then(pl.lit("null (ignored)"))
        .when(pl.col("_in"))
        .then(pl.lit("candidate" if ordered else "in window"))
        .when(pl.col("_in_et"))
        .then(pl.lit("not yet available"))
        .otherwise(pl.lit("outside window"))
    )
    frame = frame.with_columns(status.alias(STATUS)).drop("_in", "_in_et")
    if ordered:
        cands = frame.filter(pl.col(STATUS) == "candidate")
        if cands.height:
            by = ["_et", "_avail", "_pos"]
            latest = agg in ("latest", "last", "time_since_last")
            win = (cands.top_k(1, by=by) if latest else cands.bottom_k(1, by=by)).row(0, named=True)
            label = "won"
            if agg == "latest" and feature.ttl is not None and t - win["_et"] > feature.ttl:
                label = "won, too old"
            frame = frame.with_columns(
                pl.when(pl.col("_pos") == win["_pos"]).then(pl.lit(label)).otherwise(pl.col(STATUS)).alias(STATUS)
            )
    return _finish(frame, counts)


def _key_rows_where(
    normalised: pl.DataFrame, key_cols: Sequence[str], key_values: Sequence[Any], where: str | None, counts: dict[str, int]
) -> pl.DataFrame:
    """The key's rows that pass `where`; the rows it removes are counted as `filtered by where`."""
    rows = normalised.filter(key_match(normalised, key_cols, key_values))
    if where:
        keep = rows.select(compile_expr(where).fill_null(False)).to_series()
        filtered = int((~keep).sum())
        if filtered:
            counts["filtered by where"] = filtered
        rows = rows.filter(keep)
    return rows


def _count_statuses(frame: pl.DataFrame, counts: dict[str, int], order: Sequence[str]) -> dict[str, int]:
    """Add the rows per `_status` to `counts`; return them in `order`."""
    for status, n in frame.get_column(STATUS).value_counts().iter_rows():
        counts[status] = counts.get(status, 0) + int(n)
    return {s: counts[s] for s in order if s in counts}


def _finish(frame: pl.DataFrame, counts: dict[str, int]) -> tuple[pl.DataFrame, dict[str, int]]:
    """Count every status; keep (sorted) only the rows worth listing."""
    ordered_counts = _count_statuses(frame, counts, ORDER)
    frame = frame.filter(pl.col(STATUS).is_in(list(LISTED))).sort(["_et", "_avail", "_pos"], nulls_last=True)
    return frame, ordered_counts


def listed(frame: pl.DataFrame, columns: Sequence[str], limit: int | None) -> pl.DataFrame:
    """The rows worth showing (every status but the counted-only ones), at most `limit` per status."""
    shown = frame.filter(pl.col(STATUS).is_in(list(LISTED)))
    cols = [STATUS, "_pos", "_et", "_avail", "_vis", *[c for c in columns if c in frame.columns and not c.startswith("_")]]
    shown = shown.select(list(dict.fromkeys(cols)))
    if limit is not None and limit > 0:
        shown = shown.with_columns(pl.int_range(pl.len()).over(STATUS).alias("_i")).filter(pl.col("_i") < limit).drop("_i")
    order = {s: i for i, s in enumerate(ORDER)}
    return shown.with_columns(pl.col(STATUS).replace_strict(order, default=99).alias("_o")).sort(["_o", "_et", "_avail", "_pos"]).drop("_o")


# ---------- labels ----------
# A label is ground truth over event time: availability plays no part. Every source row of the key (after the
# label's `where`) is placed against the label's forward window (kernels.label_condition, the engine's own):
LABEL_ORDER = ["in label window", "null (ignored)", "before label window", "after label window", "no event time", "filtered by where"]
LABEL_LISTED = ("in label window", "null (ignored)", "before label window", "after label window", "no event time")


def label_window(defs: Definitions, label: LabelSpec, t: datetime) -> tuple[datetime, datetime, bool]:
    """(t + gap, t + gap + horizon, inclusive): [lo, hi) for the exclusive cutoff, (lo, hi] for the inclusive one."""
    assert label.horizon is not None
    inclusive = defs.label_cutoff(label) is Cutoff.INCLUSIVE
    return t + label.gap, t + label.gap + label.horizon, inclusive


def explain_label_rows(
    defs: Definitions,
    label: LabelSpec,
    normalised: pl.DataFrame,
    t: datetime,
    key_values: Sequence[Any],
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The key's label-source rows with a `_status` (`in label window`, `null (ignored)`, `before label window`,
    `after label window`, `no event time`), sorted by event time then input order; and the count per status
    (rows removed by the label's `where` counted as `filtered by where`, not listed)."""
    assert label.source is not None and label.entity is not None and label.horizon is not None
    source = defs.sources[label.source]
    counts: dict[str, int] = {}
    rows = _key_rows_where(normalised, source.keys[label.entity], key_values, label.where, counts)
    cutoff = defs.label_cutoff(label)
    inclusive = cutoff is Cutoff.INCLUSIVE
    tt = pl.lit(t).cast(UTC_US)
    in_window = K.label_condition(cutoff, label.gap, label.horizon)(tt)
    lo = tt + pl.lit(label.gap)
    before = pl.col("_et") <= lo if inclusive else pl.col("_et") < lo
    skips_nulls = label.column is not None and label.agg != "latest"  # as EntityFeatures.label
    value_null = pl.col(label.column).is_null() if skips_nulls and label.column else pl.lit(False)
    status = (
        pl.when(pl.col("_et").is_null())
        .then(pl.lit("no event time"))
        .when(in_window & value_null)
        .then(pl.lit("null (ignored)"))
        .when(in_window)
        .then(pl.lit("in label window"))
        .when(before)
        .then(pl.lit("before label window"))
        .otherwise(pl.lit("after label window"))
    )
    frame = rows.with_columns(status.alias(STATUS))
    ordered_counts = _count_statuses(frame, counts, LABEL_ORDER)
    return frame.sort(["_et", "_pos"], nulls_last=True), ordered_counts


def listed_label(frame: pl.DataFrame, columns: Sequence[str], limit: int | None) -> pl.DataFrame:
    """The label rows to show, at most `limit` per status: the rows nearest the window for `before` (the
    latest ones) and `after` (the earliest ones), in event-time order."""
    cols = [STATUS, "_pos", "_et", *[c for c in columns if c in frame.columns and not c.startswith("_")]]
    shown = frame.filter(pl.col(STATUS).is_in(list(LABEL_LISTED))).select(list(dict.fromkeys(cols)))
    shown = shown.sort(["_et", "_pos"], nulls_last=True)
    if limit is not None and limit > 0:
        rank = pl.int_range(pl.len()).over(STATUS)
        from_end = pl.len().over(STATUS) - 1 - rank
        keep = pl.when(pl.col(STATUS) == "before label window").then(from_end).otherwise(rank) < limit
        shown = shown.filter(keep)
    order = {s: i for i, s in enumerate(LABEL_ORDER)}
    return shown.with_columns(pl.col(STATUS).replace_strict(order, default=99).alias("_o")).sort(["_o", "_et", "_pos"], nulls_last=True).drop("_o")
