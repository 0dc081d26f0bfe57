"""Compare served feature values with recomputed (offline) values: frames in, `SkewReport` out.

Pure: no file IO, no engine. `offline` is what `Project.compute_features` returns for a spine made of the
served rows; it is joined to the served rows on `_row` when present (the position of the served row),
else on the row id, else on the keys and the time.

Row-level rules (per feature, over the covered rows: time not null, offline row found; a null key is
compared, since offline it sees no rows):
- numbers match when `|s - o| <= atol + rtol * max(|s|, |o|)` or `s == o` (infinities);
  NaN equals NaN; null equals null; null (or NaN) on one side only is a mismatch;
- other types (strings, booleans, lists) match by equality, null equals null;
- temporal values are compared as integers of their physical unit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from fpipe.errors import DataError, Diagnostic
from fpipe.skew import stats
from fpipe.skew.report import (
    Check,
    DistributionMetrics,
    FeatureSkew,
    LogSummary,
    RowMetrics,
    SkewReport,
    TimeBucket,
    gate_status,
)
from fpipe.spec.model import Thresholds

ROW = "_skew_row"
FOUND = "_found"
COVERED = "_covered"


def served_col(feature: str) -> str:
    return f"_s_{feature}"


def offline_col(feature: str) -> str:
    return f"_o_{feature}"


def match_col(feature: str) -> str:
    return f"_m_{feature}"


def feature_kind(served: pl.DataType, offline: pl.DataType) -> str:
    dtypes = [d for d in (served, offline) if d != pl.Null]
    if not dtypes:
        return "numeric"
    if all(d.is_numeric() or d.is_temporal() for d in dtypes):
        return "numeric"
    if all(d in (pl.String, pl.Boolean) or isinstance(d, pl.Categorical | pl.Enum) for d in dtypes):
        return "categorical"
    return "other"


def category_counts(s: pl.Series) -> tuple[list[str], np.ndarray]:
    """The non-null values of a categorical column as text, and their counts, most frequent first."""
    vc = s.drop_nulls().cast(pl.String).value_counts(sort=True, name="_n")
    return [str(v) for v in vc.to_series(0).to_list()], vc.get_column("_n").to_numpy()


def _as_float(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_temporal():
        return expr.to_physical().cast(pl.Float64)
    return expr.cast(pl.Float64)


def match_expr(s: pl.Expr, o: pl.Expr, kind: str, atol: float, rtol: float) -> pl.Expr:
    """True where served `s` and offline `o` match (see the module docstring). Both already Float64
    for numeric features, already of one type otherwise."""
    if kind != "numeric":
        return s.eq_missing(o)
    s_nan = s.is_nan().fill_null(False)
    o_nan = o.is_nan().fill_null(False)
    close = ((s - o).abs() <= atol + rtol * pl.max_horizontal(s.abs(), o.abs())) | (s == o)
    return (
        pl.when(s.is_null() | o.is_null())
        .then(s.is_null() & o.is_null())
        .when(s_nan | o_nan)
        .then(s_nan & o_nan)
        .otherwise(close)
    )


def is_missing(e: pl.Expr, kind: str) -> pl.Expr:
    """Null, or NaN for numeric features: a value missing on its side."""
    if kind == "numeric":
        return e.is_null() | e.is_nan().fill_null(False)
    return e.is_null()


@dataclass(frozen=True)
class Joined:
    """Served rows joined to their offline rows, sorted by time; internal columns `_s_f`, `_o_f`, `_m_f`."""

    frame: pl.DataFrame  # every served row, with _row, _found, _covered
    features: list[str]
    kinds: dict[str, str]
    keys: list[str]
    time_col: str
    row_id: str | None
    thresholds: dict[str, Thresholds]

    @property
    def covered(self) -> pl.DataFrame:
        return self.frame.filter(pl.col(COVERED))


def _thresholds_for(thresholds: Thresholds | Mapping[str, Thresholds], name: str) -> Thresholds:
    if isinstance(thresholds, Thresholds):
        return thresholds
    return thresholds.get(name, Thresholds())


def join_served(
    served: pl.DataFrame,
    offline: pl.DataFrame,
    features: Sequence[str],
    thresholds: Thresholds | Mapping[str, Thresholds],
    *,
    keys: Sequence[str],
    time_col: str,
    row_id: str | None = None,
    served_file: str | None = None,
) -> tuple[Joined, int]:
    """Join and type the two sides; returns the joined rows and the number of duplicate offline join keys."""
    where = served_file or "<served>"
    features = list(features)
    keys = list(keys)
    for col in [*keys, time_col, *features]:
        if col not in served.columns:
            raise DataError(Diagnostic(f"column '{col}' is missing from the serving log", file=where))
    missing = [f for f in features if f not in offline.columns]
    if missing:
        raise DataError(Diagnostic(f"offline frame lacks feature column(s) {', '.join(missing)}"))

    if ROW in served.columns:
        served = served.drop(ROW)
    base = served.with_row_index(ROW)
    if ROW in offline.columns:
        on = [ROW]
    elif row_id is not None and row_id in offline.columns:
        on = [row_id]
    else:
        on = [*keys, time_col]
    off = offline.select([*on, *features])
    n_off = off.height
    off = off.unique(subset=on, keep="first", maintain_order=True)
    offline_duplicates = n_off - off.height
    off = off.rename({f: offline_col(f) for f in features}).with_columns(pl.lit(True).alias(FOUND))
    keep = [ROW, *keys, time_col, *([row_id] if row_id and row_id not in (*keys, time_col) else [])]
    left = base.select([*keep, *[pl.col(f).alias(served_col(f)) for f in features]])
    if on != [ROW]:
        for c in on:
            if off.schema[c] != left.schema[c]:
                try:
                    off = off.with_columns(pl.col(c).cast(left.schema[c]))
                except pl.exceptions.PolarsError as exc:
                    raise DataError(
                        Diagnostic(
                            f"column '{c}' is {left.schema[c]} in the serving log and {off.schema[c]} offline",
                            file=where,
                            hint="cast the column upstream so both sides have one type",
                        )
                    ) from exc
    frame = left.join(off, on=on, how="left", maintain_order="left")
    frame = frame.with_columns(pl.col(FOUND).fill_null(False))

    kinds: dict[str, str] = {}
    casts: list[pl.Expr] = []
    for f in features:
        sd, od = frame.schema[served_col(f)], frame.schema[offline_col(f)]
        if sd == pl.String and (od.is_numeric() or od == pl.Boolean):
            # text logs (CSV) may hold numbers or booleans as strings, or a column of empty strings
            try:
                frame = frame.with_columns(pl.col(served_col(f)).cast(od, strict=True))
                sd = od
            except pl.exceptions.PolarsError:
                pass
        kind = feature_kind(sd, od)
        if kind == "other" and sd != od and pl.Null not in (sd, od):
            raise DataError(
                Diagnostic(
                    f"column '{f}' is {sd}, but feature '{f}' is {od}",
                    file=where,
                    hint="serve the feature with the type fpipe computes, or cast the column upstream",
                )
            )
        if kind == "numeric":
            casts += [_as_float(pl.col(served_col(f)), sd).alias(served_col(f))]
            casts += [_as_float(pl.col(offline_col(f)), od).alias(offline_col(f))]
        elif kind == "categorical":
            casts += [pl.col(served_col(f)).cast(pl.String), pl.col(offline_col(f)).cast(pl.String)]
        elif sd == pl.Null:
            casts += [pl.col(served_col(f)).cast(od)]
        elif od == pl.Null:
            casts += [pl.col(offline_col(f)).cast(sd)]
        kinds[f] = kind
    if casts:
        frame = frame.with_columns(casts)

    # a row with a null key is compared (it sees no rows offline: counts 0, others null or default)
    frame = frame.with_columns((pl.col(FOUND) & pl.col(time_col).is_not_null()).alias(COVERED))
    ths = {f: _thresholds_for(thresholds, f) for f in features}
    frame = frame.with_columns(
        [
            match_expr(pl.col(served_col(f)), pl.col(offline_col(f)), kinds[f], ths[f].atol, ths[f].rtol).alias(
                match_col(f)
            )
            for f in features
        ]
    )
    frame = frame.sort(time_col, maintain_order=True, nulls_last=True)
    return Joined(frame, features, kinds, keys, time_col, row_id, ths), offline_duplicates


_BUCKETS: list[tuple[str, timedelta]] = [
    ("1s", timedelta(seconds=1)),
    ("10s", timedelta(seconds=10)),
    ("1m", timedelta(minutes=1)),
    ("5m", timedelta(minutes=5)),
    ("15m", timedelta(minutes=15)),
    ("1h", timedelta(hours=1)),
    ("3h", timedelta(hours=3)),
    ("6h", timedelta(hours=6)),
    ("12h", timedelta(hours=12)),
    ("1d", timedelta(days=1)),
    ("2d", timedelta(days=2)),
    ("7d", timedelta(days=7)),
    ("28d", timedelta(days=28)),
    ("91d", timedelta(days=91)),
    ("364d", timedelta(days=364)),
]
MAX_BUCKETS = 48


def choose_bucket(span: timedelta) -> str:
    for name, width in _BUCKETS:
        if span / width < MAX_BUCKETS:
            return name
    return _BUCKETS[-1][0]


def _bernoulli_ll(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Maximised Bernoulli log-likelihood of x successes in m trials (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(m > 0, x / np.maximum(m, 1), 0.0)
        a = np.where(x > 0, x * np.log(np.where(x > 0, p, 1.0)), 0.0)
        b = np.where(m - x > 0, (m - x) * np.log(np.where(m - x > 0, 1.0 - p, 1.0)), 0.0)
    return np.asarray(a + b)


def change_point(mismatch: np.ndarray, coarse: int = 4096) -> tuple[int, float, float, float] | None:
    """Best single split of a time-ordered 0/1 series (two Bernoulli segments, maximum likelihood).

    Returns (index of the first row after the split, rate before, rate after, log-likelihood gain).
    Long series are searched on a grid of `coarse` splits, then exactly around the best one."""
    n = mismatch.size
    if n < 2:
        return None
    cs = np.cumsum(mismatch, dtype=np.float64)
    total = float(cs[-1])

    def gains(splits: np.ndarray) -> np.ndarray:
        left = cs[splits - 1]
        k = splits.astype(np.float64)
        return _bernoulli_ll(left, k) + _bernoulli_ll(total - left, n - k) - _bernoulli_ll(
            np.array([total]), np.array([float(n)])
        )

    if n - 1 > 2 * coarse:
        grid = np.unique(np.linspace(1, n - 1, coarse).astype(np.int64))
        g = gains(grid)
        i = int(np.argmax(g))
        lo = int(grid[max(i - 1, 0)])
        hi = int(grid[min(i + 1, grid.size - 1)])
        splits = np.arange(lo, hi + 1, dtype=np.int64)
    else:
        splits = np.arange(1, n, dtype=np.int64)
    g = gains(splits)
    i = int(np.argmax(g))
    split = int(splits[i])
    left = float(cs[split - 1])
    return split, left / split, (total - left) / (n - split), float(g[i])


def _row_metrics(j: Joined, cov: pl.DataFrame, worst_n: int) -> dict[str, RowMetrics]:
    exprs: list[pl.Expr] = []
    for f in j.features:
        s, o, m, kind = pl.col(served_col(f)), pl.col(offline_col(f)), pl.col(match_col(f)), j.kinds[f]
        exprs += [
            m.sum().alias(f"{f}|matches"),
            (is_missing(s, kind) & ~is_missing(o, kind)).sum().alias(f"{f}|s_null"),
            (is_missing(o, kind) & ~is_missing(s, kind)).sum().alias(f"{f}|o_null"),
        ]
        if kind == "numeric":
            both = s.is_finite() & o.is_finite()
            diff = pl.when(both).then(s - o)
            denom = pl.max_horizontal(s.abs(), o.abs())
            rel = pl.when(both).then(pl.when(denom == 0).then(0.0).otherwise((s - o).abs() / denom))
            exprs += [
                diff.mean().alias(f"{f}|bias"),
                diff.abs().mean().alias(f"{f}|mae"),
                rel.median().alias(f"{f}|rel_med"),
                rel.quantile(0.95, "linear").alias(f"{f}|rel_p95"),
            ]
    agg = cov.select(exprs).row(0, named=True) if exprs else {}

    def opt(v: Any) -> float | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    tcol = j.time_col
    times = cov.get_column(tcol)
    if cov.height:
        t0, t1 = times.min(), times.max()
        span = (t1 - t0) if t0 is not None and t1 is not None else timedelta(0)  # type: ignore[operator]
    else:
        t0, span = None, timedelta(0)
    bucket = choose_bucket(span if isinstance(span, timedelta) else timedelta(0))
    over = (
        cov.group_by(pl.col(tcol).dt.truncate(bucket).alias("_bucket"))
        .agg([pl.len().alias("_n"), *[(~pl.col(match_col(f))).sum().alias(f) for f in j.features]])
        .sort("_bucket")
    )
    out: dict[str, RowMetrics] = {}
    keep_cols = [c for c in [j.row_id, *j.keys, tcol] if c is not None]
    keep_cols = list(dict.fromkeys(keep_cols))
    for f in j.features:
        kind = j.kinds[f]
        rm = RowMetrics(
            compared=cov.height,
            matches=int(agg.get(f"{f}|matches") or 0),
            served_null_only=int(agg.get(f"{f}|s_null") or 0),
            offline_null_only=int(agg.get(f"{f}|o_null") or 0),
            bias=opt(agg.get(f"{f}|bias")),
            mae=opt(agg.get(f"{f}|mae")),
            rel_err_median=opt(agg.get(f"{f}|rel_med")),
            rel_err_p95=opt(agg.get(f"{f}|rel_p95")),
            bucket=bucket,
        )
        if rm.mismatches:
            mm = ~cov.get_column(match_col(f)).to_numpy()
            idx = np.flatnonzero(mm)
            rm.first_mismatch_at = times[int(idx[0])]
            rm.last_mismatch_at = times[int(idx[-1])]
            cp = change_point(mm.astype(np.float64))
            if cp is not None:
                split, before, after, gain = cp
                if gain > 5.0 and after > before and (before == 0.0 or before <= after / 10):
                    rm.started_at = times[split]
                    rm.rate_before, rm.rate_after = before, after
            rm.over_time = [
                TimeBucket(start=b, rows=int(n), mismatches=int(x))
                for b, n, x in zip(over["_bucket"], over["_n"], over[f], strict=True)
            ]
            bad = cov.lazy().filter(~pl.col(match_col(f))).select(
                [*keep_cols, pl.col(served_col(f)).alias("served"), pl.col(offline_col(f)).alias("offline")]
            )
            if kind == "numeric":
                score = (pl.col("served") - pl.col("offline")).abs().fill_nan(float("inf")).fill_null(float("inf"))
                bad = bad.with_row_index("_i").with_columns(score.alias("_score"))
                bad = bad.top_k(worst_n, by=["_score", "_i"], reverse=[False, True]).sort(
                    ["_score", "_i"], descending=[True, False]
                ).drop("_score", "_i")
            rows = bad.head(worst_n).collect()
            rm.worst_rows = rows.to_dicts()
        out[f] = rm
    return out


def _distribution(cov: pl.DataFrame, f: str, kind: str) -> tuple[DistributionMetrics, dict[str, float]]:
    s, o = cov.get_column(served_col(f)), cov.get_column(offline_col(f))
    n = cov.height
    if kind == "numeric":
        s_null = int(s.null_count()) + int(s.is_nan().fill_null(False).sum())
        o_null = int(o.null_count()) + int(o.is_nan().fill_null(False).sum())
    else:
        s_null, o_null = int(s.null_count()), int(o.null_count())
    dm = DistributionMetrics(
        kind=kind,
        n_served=n - s_null,
        n_offline=n - o_null,
        null_rate_served=s_null / n if n else 0.0,
        null_rate_offline=o_null / n if n else 0.0,
    )
    floors = {"null_rate_change": stats.null_rate_floor(o_null, n, s_null, n)}
    if kind == "numeric":
        x = o.drop_nulls().drop_nans().to_numpy().astype(np.float64, copy=False)
        y = s.drop_nulls().drop_nans().to_numpy().astype(np.float64, copy=False)
        nd = stats.compare_numeric(x, y)
        dm.psi, dm.psi_bins, dm.ks = nd.psi, nd.psi_bins, nd.ks
        dm.wasserstein_over_std, dm.js_distance = nd.wasserstein_over_std, nd.js_distance
        floors["psi"] = nd.psi_floor
    elif kind == "categorical":
        cd = stats.compare_categorical(*category_counts(o), *category_counts(s))
        dm.psi, dm.psi_bins, dm.js_distance = cd.psi, cd.psi_bins, cd.js_distance
        dm.category_share_change, dm.category, dm.unseen_share = cd.share_change, cd.share_change_category, cd.unseen_share
        floors["psi"] = cd.psi_floor
        floors["category_share_change"] = cd.share_change_floor
        floors["unseen_share"] = cd.unseen_floor
    return dm, floors


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.2f}%"


def _checks(th: Thresholds, coverage: float, rm: RowMetrics, dm: DistributionMetrics, floors: dict[str, float]) -> list[Check]:
    def mk(name: str, level: str, value: float | None, warn: float, fail: float, direction: str, floor: float, msg: str) -> Check:
        return Check(name, level, value, warn, fail, direction, floor, gate_status(value, warn, fail, floor, direction), msg)

    checks = [
        mk("coverage", "row", coverage, th.coverage_warn, th.coverage_fail, "below", 0.0,
           f"{_fmt_pct(coverage)} of served rows found their offline row"),
        mk("mismatch_rate", "row", rm.mismatch_rate, th.mismatch_warn, th.mismatch_fail, "above_strict", 0.0,
           f"{rm.mismatches:,} of {rm.compared:,} rows differ ({_fmt_pct(rm.mismatch_rate)})"),
    ]
    if dm.psi is not None and "psi" in floors:
        checks.append(mk("psi", "distribution", dm.psi, th.psi_warn, th.psi_fail, "above", floors["psi"],
                         f"PSI {dm.psi:.4f} over {dm.psi_bins} bins (noise floor {floors['psi']:.4f})"))
    if dm.kind == "categorical":
        checks.append(mk("category_share_change", "distribution", dm.category_share_change, th.category_warn,
                         th.category_fail, "above", floors["category_share_change"],
                         f"share of '{dm.category}' changed by {_fmt_pct(dm.category_share_change)}"))
        checks.append(mk("unseen_share", "distribution", dm.unseen_share, th.category_warn, th.category_fail,
                         "above", floors["unseen_share"],
                         f"{_fmt_pct(dm.unseen_share)} of served values are categories never seen offline"))
    checks.append(mk("null_rate_change", "distribution", dm.null_rate_change, th.null_rate_warn, th.null_rate_fail,
                     "above", floors["null_rate_change"],
                     f"null rate {_fmt_pct(dm.null_rate_served)} served vs {_fmt_pct(dm.null_rate_offline)} offline"))
    return checks


METHODS: dict[str, Any] = {
    "tolerance": "|served - offline| <= atol + rtol * max(|served|, |offline|); NaN equals NaN; "
    "null on one side only is a mismatch; non-numeric values by equality",
    "psi": {
        "bins": stats.PSI_BINS,
        "binning": "offline quantiles at 10%..90% (inverted CDF), repeated edges merged, right-closed bins",
        "formula": "sum (q - p) * ln(q / p), p offline share, q served share",
        "epsilon": stats.PSI_EPSILON,
        "epsilon_rule": "shares below epsilon are raised to epsilon, without renormalisation",
        "categorical": "same formula over the union of categories",
    },
    "ks": "two-sample Kolmogorov-Smirnov statistic (reported, not gated)",
    "wasserstein": "first Wasserstein distance / offline population std (ddof=0) (reported, not gated)",
    "js": "Jensen-Shannon distance, base 2, over the PSI bins (reported, not gated)",
    "noise_floor": {
        "method": "analytic",
        "level": stats.FLOOR_LEVEL,
        "psi": "chi2_0.95(bins-1) * (1/n_offline + 1/n_served)",
        "category_share_change": "z_(1-0.05/2k) * sqrt(max pbar(1-pbar) * (1/n_offline + 1/n_served))",
        "null_rate_change": "z_0.975 * sqrt(pt(1-pt) * (1/n_offline + 1/n_served)), pt=(nulls+1)/(n+2) pooled",
        "unseen_share": "Good-Turing missing mass of the offline sample + z_0.95 * sqrt(m(1-m)/n_served)",
        "coverage": "0: a paired comparison has no sampling noise",
        "mismatch_rate": "0: a paired comparison has no sampling noise",
        "rule": "a check whose threshold is at or below its noise floor is inconclusive",
    },
}


def compare_joined(j: Joined, log: LogSummary, *, worst_rows: int = 5) -> list[FeatureSkew]:
    from concurrent.futures import ThreadPoolExecutor

    cov = j.covered
    rows = _row_metrics(j, cov, worst_rows)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # numpy sorts release the GIL
        dists = list(pool.map(lambda f: _distribution(cov, f, j.kinds[f]), j.features))
    out = []
    for f, (dm, floors) in zip(j.features, dists, strict=True):
        th = j.thresholds[f]
        sd = str(j.frame.schema[served_col(f)])
        od = str(j.frame.schema[offline_col(f)])
        out.append(FeatureSkew(f, j.kinds[f], sd, od, th, _checks(th, log.coverage, rows[f], dm, floors), rows[f], dm))
    return out


def summarise_log(j: Joined, offline_duplicates: int) -> LogSummary:
    fr = j.frame
    n = fr.height
    null_keys = int(fr.select(pl.any_horizontal([pl.col(k).is_null() for k in j.keys]).sum()).item()) if j.keys else 0
    null_times = int(fr.get_column(j.time_col).null_count())
    covered = int(fr.get_column(COVERED).sum())
    unmatched = int(fr.filter(~pl.col(FOUND)).height)
    dup_keys = n - fr.select([*j.keys, j.time_col]).n_unique() if n else 0
    dup_ids = n - fr.get_column(j.row_id).n_unique() if j.row_id and n else 0
    times = fr.get_column(j.time_col)
    return LogSummary(
        served_rows=n,
        covered_rows=covered,
        null_keys=null_keys,
        null_times=null_times,
        unmatched=unmatched,
        duplicate_keys=dup_keys,
        duplicate_row_ids=dup_ids,
        offline_duplicates=offline_duplicates,
        first_time=times.min() if n else None,  # type: ignore[arg-type]
        last_time=times.max() if n else None,  # type: ignore[arg-type]
    )


def compare_served(
    served: pl.DataFrame,
    offline: pl.DataFrame,
    features: Sequence[str],
    thresholds: Thresholds | Mapping[str, Thresholds],
    *,
    keys: Sequence[str],
    time_col: str,
    row_id: str | None = None,
    fail_on: str = "fail",
    worst_rows: int = 5,
    training_set: str | None = None,
    served_file: str | None = None,
) -> tuple[SkewReport, Joined]:
    """Row-level and distribution comparison of served values with offline values (no diagnosis); also
    returns the joined rows (for diagnosis, plots and --samples-out)."""
    j, off_dups = join_served(
        served, offline, features, thresholds, keys=keys, time_col=time_col, row_id=row_id, served_file=served_file
    )
    log = summarise_log(j, off_dups)
    report = SkewReport(
        features=compare_joined(j, log, worst_rows=worst_rows),
        log=log,
        time_column=time_col,
        key_columns=list(keys),
        row_id_column=row_id,
        training_set=training_set,
        served_file=served_file,
        fail_on=fail_on,
        methods=METHODS,
    )
    if log.duplicate_keys:
        report.notes.append(f"{log.duplicate_keys:,} served rows repeat the keys and time of an earlier row")
    if log.duplicate_row_ids:
        report.notes.append(f"{log.duplicate_row_ids:,} served rows repeat an earlier row id")
    if log.null_keys:
        report.notes.append(f"{log.null_keys:,} served rows have a null key (compared: offline they see no rows)")
    if log.null_times:
        report.notes.append(f"{log.null_times:,} served rows with a null time were not compared")
    if log.offline_duplicates:
        report.notes.append(f"{log.offline_duplicates:,} offline rows repeated a join key (the first was used)")
    return report, j


def mismatched_rows(j: Joined) -> pl.DataFrame:
    """Served rows that mismatch on at least one feature: ids, keys, time, then `<f>.served`, `<f>.offline`
    and `<f>.match` per feature, and `mismatched_features` (comma-separated names)."""
    cov = j.covered
    if not j.features:
        return cov.head(0)
    any_bad = pl.any_horizontal([~pl.col(match_col(f)) for f in j.features])
    bad = cov.filter(any_bad)
    front = list(dict.fromkeys(c for c in [j.row_id, *j.keys, j.time_col] if c is not None))
    cols: list[pl.Expr] = [pl.col(c) for c in front]
    for f in j.features:
        cols += [
            pl.col(served_col(f)).alias(f"{f}.served"),
            pl.col(offline_col(f)).alias(f"{f}.offline"),
            pl.col(match_col(f)).alias(f"{f}.match"),
        ]
    names = pl.concat_str(
        [pl.when(~pl.col(match_col(f))).then(pl.lit(f)) for f in j.features], separator=",", ignore_nulls=True
    )
    return bad.select([*cols, names.alias("mismatched_features")])
