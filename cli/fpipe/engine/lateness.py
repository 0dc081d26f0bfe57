"""Late and out-of-order data: how long after its event each source row became available, per source.

Over the normalised source (engine/visibility.py: `_et`, `_avail`, `_pos`):
- lateness = `_avail - _et` (seconds) of the rows with both times: p50, p95, p99, max, and the share of
  rows later than a threshold;
- out of order: rows whose event_time is earlier than an event_time that came before them in input
  order (`_et < max(_et of earlier rows)`), and the largest such step back;
- in the future: event_time after `now`, and rows available before their event time (the engine does
  not see them before their event time, but a serving system may have);
- never visible: a null event or available time;
- a suggested `lag:` -- the p99 lateness rounded up to a round duration: the fixed lag that would cover
  99% of rows (for a serving system that does not record when rows arrive).
Quantiles are observed values: the one at rank ceil((n-1)q) (Polars' "higher").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import polars as pl

NICE_SECONDS = [
    1, 2, 5, 10, 15, 30, 60, 2 * 60, 5 * 60, 10 * 60, 15 * 60, 30 * 60, 3600, 2 * 3600, 3 * 3600, 6 * 3600,
    12 * 3600, 86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 28 * 86400,
]


@dataclass
class LatenessReport:
    source: str
    rows: int
    rows_with_times: int  # both event and availability time known
    never_visible: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None
    threshold_s: float
    later_than_threshold: int
    later_than_threshold_share: float
    out_of_order: int
    out_of_order_share: float
    max_step_back_s: float | None  # largest event-time step back in input order
    future_event_time: int  # event_time > now
    available_before_event: int  # avail < event_time
    has_available_time: bool
    suggested_lag: str | None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def round_up_duration(seconds: float) -> timedelta:
    """The smallest round duration >= seconds (1s, 2s, 5s, ..., 1h, 2h, ..., 1d, 2d, 3d, 1w, 2w, 4w, then weeks)."""
    if seconds <= 0:
        return timedelta(0)
    for s in NICE_SECONDS:
        if seconds <= s:
            return timedelta(seconds=s)
    weeks = -(-seconds // (7 * 86400))
    return timedelta(weeks=weeks)


def lateness_report(
    name: str, normalised: pl.DataFrame, *, threshold: timedelta, now: datetime, has_available_time: bool
) -> LatenessReport:
    """`normalised`: the source after engine/visibility.normalise_source (`_et`, `_avail`, `_pos`)."""
    from fpipe.spec.durations import format_duration

    frame = normalised.sort("_pos")
    rows = frame.height
    late_s = ((pl.col("_avail") - pl.col("_et")).dt.total_microseconds().cast(pl.Float64) / 1e6).alias("_late")
    prev_max = pl.col("_et").cum_max().shift(1)
    stats = frame.select(
        pl.col("_et").is_not_null().and_(pl.col("_avail").is_not_null()).sum().alias("both"),
        (pl.col("_et").is_null() | pl.col("_avail").is_null()).sum().alias("never"),
        late_s.quantile(0.5, "higher").alias("p50"),
        late_s.quantile(0.95, "higher").alias("p95"),
        late_s.quantile(0.99, "higher").alias("p99"),
        late_s.max().alias("max"),
        (late_s > threshold.total_seconds()).sum().alias("late"),
        (pl.col("_et") < prev_max).sum().alias("ooo"),
        ((prev_max - pl.col("_et")).dt.total_microseconds().cast(pl.Float64) / 1e6).max().alias("step"),
        (pl.col("_et") > pl.lit(now)).sum().alias("future"),
        (pl.col("_avail") < pl.col("_et")).sum().alias("early"),
    ).row(0, named=True)
    both = int(stats["both"] or 0)
    p99 = stats["p99"]
    lag = None
    if p99 is not None:
        lag = format_duration(round_up_duration(max(float(p99), 0.0)))
    step = stats["step"]
    return LatenessReport(
        source=name,
        rows=rows,
        rows_with_times=both,
        never_visible=int(stats["never"] or 0),
        p50_s=_f(stats["p50"]),
        p95_s=_f(stats["p95"]),
        p99_s=_f(p99),
        max_s=_f(stats["max"]),
        threshold_s=threshold.total_seconds(),
        later_than_threshold=int(stats["late"] or 0),
        later_than_threshold_share=(int(stats["late"] or 0) / both) if both else 0.0,
        out_of_order=int(stats["ooo"] or 0),
        out_of_order_share=(int(stats["ooo"] or 0) / rows) if rows else 0.0,
        max_step_back_s=_f(step) if step is not None and step > 0 else None,
        future_event_time=int(stats["future"] or 0),
        available_before_event=int(stats["early"] or 0),
        has_available_time=has_available_time,
        suggested_lag=lag,
    )


def _f(x: object) -> float | None:
    return None if x is None else float(x)  # type: ignore[arg-type]


def human_seconds(s: float | None) -> str:
    """1.5 -> '1.5s', 5400 -> '1h30m', 15737 -> '4h22m' (at most two units), None -> '-'."""
    if s is None:
        return "-"
    if abs(s) < 60:
        return f"{s:g}s" if s == int(s) else f"{s:.1f}s"
    sign = "-" if s < 0 else ""
    rest = int(round(abs(s)))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        q, rest = divmod(rest, size)
        if q or parts:
            parts.append(f"{q}{unit}" if q else "")
        if len(parts) == 2:
            break
    return sign + ("".join(parts) or "0s")
