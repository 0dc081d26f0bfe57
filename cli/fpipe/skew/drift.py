"""Drift over time: how each feature's distribution in a training set moves across time buckets.

The spine time is cut into buckets of `every` (a duration, e.g. 1w), aligned on midnight UTC of the
first spine instant: [t0, t0 + every), [t0 + every, t0 + 2 every), ... Every bucket is compared with the
reference (the first bucket, or the rows inside an explicit `[start, end)` range) with the skew report's
statistics (skew/stats.py): PSI with its noise floor (numeric: 10 quantile bins of the reference;
categorical: category shares), the largest category share change with its floor, and the null-rate
change with its floor.

A bucket drifts on a metric when the change is over the threshold AND over its noise floor (so a small
bucket is not flagged for sampling noise): PSI > max(psi_fail, floor), |category share change| >
max(category_fail, floor), |null-rate change| > max(null_rate_fail, floor). `warn` uses the warn
thresholds. Thresholds are the project's skew thresholds (`skew:` in the definitions) unless given.
A bucket (or reference) with fewer than MIN_ROWS rows is compared but never flagged (`few rows`).
A feature "drifts from" the first bucket after which every compared bucket drifts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from fpipe.skew import stats
from fpipe.skew.compare import category_counts, feature_kind
from fpipe.spec.model import Thresholds

OK, WARN, DRIFT, REFERENCE, EMPTY, FEW = "ok", "warn", "drift", "reference", "empty", "few rows"
MIN_ROWS = 50  # buckets (and references) with fewer rows are compared but never flagged: the PSI floor's
# chi-square approximation does not hold for a handful of rows spread over 10 bins
BUCKET = "_bucket"


@dataclass
class BucketDrift:
    start: datetime
    rows: int
    status: str
    psi: float | None = None
    psi_floor: float | None = None
    null_rate: float = 0.0
    null_rate_change: float = 0.0
    null_rate_floor: float | None = None
    share_change: float | None = None  # categorical: largest |share change| of one category
    share_change_category: str | None = None
    share_change_floor: float | None = None
    shares: dict[str, float] = field(default_factory=dict)  # categorical: top category shares
    reasons: list[str] = field(default_factory=list)


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric | categorical | other
    buckets: list[BucketDrift]
    drifting_from: datetime | None  # the first bucket from which every non-empty bucket drifts
    status: str  # worst bucket status
    max_psi: float | None


@dataclass
class DriftReport:
    training_set: str | None
    time_column: str
    every: timedelta
    reference: tuple[datetime, datetime]
    bucket_starts: list[datetime]
    rows_without_time: int
    thresholds: Thresholds
    features: list[FeatureDrift]

    @property
    def drifting(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.status == DRIFT]

    @property
    def failed(self) -> bool:
        return bool(self.drifting)

    def to_json(self) -> dict[str, object]:
        from fpipe.spec.durations import format_duration

        def clean(o: object) -> object:
            if isinstance(o, float):
                return None if math.isnan(o) or math.isinf(o) else o
            if isinstance(o, datetime):
                return o.isoformat()
            if isinstance(o, dict):
                return {k: clean(v) for k, v in o.items()}
            if isinstance(o, list | tuple):
                return [clean(v) for v in o]
            return o

        return {
            "training_set": self.training_set,
            "time_column": self.time_column,
            "every": format_duration(self.every),
            "reference": [self.reference[0].isoformat(), self.reference[1].isoformat()],
            "buckets": [b.isoformat() for b in self.bucket_starts],
            "rows_without_time": self.rows_without_time,
            "thresholds": asdict(self.thresholds),
            "failed": self.failed,
            "drifting": [f.feature for f in self.drifting],
            "features": [clean(asdict(f)) for f in self.features],
        }


def _numbers(s: pl.Series) -> np.ndarray:
    if s.dtype.is_temporal():
        s = s.to_physical()
    a = s.cast(pl.Float64).drop_nulls().to_numpy().astype(np.float64, copy=False)
    return a[~np.isnan(a)]


def _missing(s: pl.Series, kind: str) -> int:
    n = int(s.null_count())
    if kind == "numeric" and s.dtype in (pl.Float32, pl.Float64):
        n += int(s.is_nan().fill_null(False).sum())
    return n


def _utc(d: datetime) -> datetime:
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def assign_buckets(frame: pl.DataFrame, time_col: str, every: timedelta) -> tuple[pl.DataFrame, list[datetime]]:
    """Add `_bucket` (bucket start) to the rows with a time; buckets aligned on midnight UTC of the first."""
    t = pl.col(time_col).dt.convert_time_zone("UTC") if getattr(frame.schema[time_col], "time_zone", None) else pl.col(time_col).dt.replace_time_zone("UTC")
    timed = frame.with_columns(t.dt.cast_time_unit("us").alias("_t")).filter(pl.col("_t").is_not_null())
    if timed.height == 0:
        return timed.with_columns(pl.col("_t").alias(BUCKET)), []
    first = timed.get_column("_t").min()
    assert isinstance(first, datetime)
    origin = first.replace(hour=0, minute=0, second=0, microsecond=0)
    step = every // timedelta(microseconds=1)
    origin_us = int((origin - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1))
    idx = (pl.col("_t").dt.epoch("us") - origin_us) // step
    timed = timed.with_columns((pl.lit(origin) + pl.duration(microseconds=idx * step)).dt.cast_time_unit("us").alias(BUCKET))
    last = timed.get_column(BUCKET).max()
    assert isinstance(last, datetime)
    starts = []
    b = origin
    while b <= last:
        starts.append(b)
        b += every
    return timed, starts


def compute_drift(
    frame: pl.DataFrame,
    time_col: str,
    features: Sequence[str],
    every: timedelta,
    *,
    reference: tuple[datetime, datetime] | None = None,
    thresholds: Thresholds | None = None,
    training_set: str | None = None,
    min_rows: int = MIN_ROWS,
) -> DriftReport:
    th = thresholds or Thresholds()
    timed, starts = assign_buckets(frame, time_col, every)
    rows_without_time = frame.height - timed.height
    if reference is None:
        ref_range = (starts[0], starts[0] + every) if starts else (datetime(1970, 1, 1, tzinfo=UTC),) * 2
        ref = timed.filter(pl.col(BUCKET) == starts[0]) if starts else timed
    else:
        ref_range = (_utc(reference[0]), _utc(reference[1]))
        ref = timed.filter((pl.col("_t") >= ref_range[0]) & (pl.col("_t") < ref_range[1]))
    parts = {b: g for (b,), g in timed.partition_by(BUCKET, as_dict=True, maintain_order=True).items()} if timed.height else {}
    out = []
    for f in features:
        kind = feature_kind(frame.schema[f], frame.schema[f])
        out.append(_feature_drift(f, kind, ref.get_column(f), parts, starts, th, ref_range if reference is not None else None, min_rows))
    return DriftReport(training_set, time_col, every, ref_range, starts, rows_without_time, th, out)


def _feature_drift(
    name: str, kind: str, ref: pl.Series, parts: dict[object, pl.DataFrame], starts: list[datetime], th: Thresholds,
    explicit_ref: tuple[datetime, datetime] | None, min_rows: int = MIN_ROWS,
) -> FeatureDrift:
    n_ref = ref.len()
    ref_null = _missing(ref, kind)
    ref_rate = ref_null / n_ref if n_ref else 0.0
    x = _numbers(ref) if kind == "numeric" else None
    xc = category_counts(ref) if kind == "categorical" else None
    buckets: list[BucketDrift] = []
    for i, b in enumerate(starts):
        g = parts.get(b)
        if g is None or g.height == 0:
            buckets.append(BucketDrift(b, 0, EMPTY))
            continue
        s = g.get_column(name)
        n = s.len()
        nulls = _missing(s, kind)
        bd = BucketDrift(b, n, OK, null_rate=nulls / n, null_rate_change=nulls / n - ref_rate)
        if explicit_ref is None and i == 0:
            bd.status = REFERENCE
            if kind == "categorical":
                vals, counts = category_counts(s)
                bd.shares = _top_shares(vals, counts)
            buckets.append(bd)
            continue
        bd.null_rate_floor = stats.null_rate_floor(ref_null, n_ref, nulls, n)
        levels = []
        if kind == "numeric" and x is not None:
            nd = stats.compare_numeric(x, _numbers(s))
            bd.psi, bd.psi_floor = _num(nd.psi), nd.psi_floor
            levels.append(_level("PSI", bd.psi, nd.psi_floor, th.psi_warn, th.psi_fail, bd.reasons))
        elif kind == "categorical" and xc is not None:
            vals, counts = category_counts(s)
            cd = stats.compare_categorical(xc[0], xc[1], vals, counts)
            bd.psi, bd.psi_floor = _num(cd.psi), cd.psi_floor
            bd.share_change, bd.share_change_category, bd.share_change_floor = _num(cd.share_change), cd.share_change_category, cd.share_change_floor
            bd.shares = _top_shares(vals, counts)
            levels.append(_level("PSI", bd.psi, cd.psi_floor, th.psi_warn, th.psi_fail, bd.reasons))
            levels.append(_level(f"share of '{cd.share_change_category}'", bd.share_change, cd.share_change_floor, th.category_warn, th.category_fail, bd.reasons))
        levels.append(_level("null rate", abs(bd.null_rate_change), bd.null_rate_floor, th.null_rate_warn, th.null_rate_fail, bd.reasons))
        bd.status = DRIFT if DRIFT in levels else WARN if WARN in levels else OK
        if n < min_rows or n_ref < min_rows:
            bd.status = FEW
        buckets.append(bd)
    compared = [b for b in buckets if b.status not in (REFERENCE, EMPTY, FEW)]
    drifting_from = None
    for j, cb in enumerate(compared):
        if all(c.status == DRIFT for c in compared[j:]):
            drifting_from = cb.start
            break
    status = DRIFT if any(c.status == DRIFT for c in compared) else WARN if any(c.status == WARN for c in compared) else OK
    psis = [c.psi for c in compared if c.psi is not None]
    return FeatureDrift(name, kind, buckets, drifting_from, status, max(psis) if psis else None)


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _top_shares(vals: list[str], counts: np.ndarray, top: int = 5) -> dict[str, float]:
    total = float(counts.sum()) or 1.0
    return {v: float(c) / total for v, c in list(zip(vals, counts, strict=True))[:top]}


def _level(what: str, value: float | None, floor: float | None, warn: float, fail: float, reasons: list[str]) -> str:
    if value is None:
        return OK
    fl = floor if floor is not None and math.isfinite(floor) else math.inf
    if value > max(fail, fl):
        reasons.append(f"{what} {value:.3g} > {fail:g} (floor {fl:.3g})")
        return DRIFT
    if value > max(warn, fl):
        reasons.append(f"{what} {value:.3g} > warn {warn:g} (floor {fl:.3g})")
        return WARN
    return OK
