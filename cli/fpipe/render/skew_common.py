"""Formatting shared by the skew renderers."""

from __future__ import annotations

import math
from datetime import datetime

from fpipe.skew.report import FeatureSkew, SkewReport

STATUS_TEXT = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}


def pct(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.{digits}f}%"


def num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def when(t: datetime | None) -> str:
    if t is None:
        return ""
    return t.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if t.utcoffset() is not None and not t.utcoffset() else "")


def since(f: FeatureSkew) -> str:
    """When mismatches started, in a few words."""
    r = f.row
    if not r.mismatches:
        return ""
    if r.started_at is not None:
        return f"since {when(r.started_at)}"
    return f"throughout (first {when(r.first_mismatch_at)})"


def cause(f: FeatureSkew) -> str:
    d = f.diagnosis
    if d is None:
        return ""
    return d.summary


def short_cause(f: FeatureSkew) -> str:
    """The cause in a few words, for a table cell."""
    d = f.diagnosis
    if d is None:
        return ""
    if d.cause is None:
        return "unexplained"
    p = d.parameters
    if d.cause == "ingestion_lag":
        from datetime import timedelta

        from fpipe.spec.durations import format_duration

        return f"lag +{format_duration(timedelta(seconds=p['lag_seconds']))} on {p['source']}"
    if d.cause == "scale":
        c = p["factor"]
        return f"scale x{c:g}" if abs(c) >= 1 else f"scale /{1 / c:g}"
    if d.cause == "offset":
        return f"offset {p['offset']:+g}"
    if d.cause == "cutoff_boundary":
        return f"{p['cutoff']} cutoff"
    if d.cause == "time_shift":
        return f"time shift {p['hours']:+d}h"
    if d.cause == "stale_value":
        return "stale value"
    return "null filling"


def short_since(f: FeatureSkew) -> str:
    r = f.row
    if not r.mismatches:
        return ""
    if r.started_at is not None:
        return "since " + r.started_at.strftime("%Y-%m-%d %H:%M")
    return "throughout"


def headline(report: SkewReport) -> str:
    c = report.counts()
    log = report.log
    what = f"training set {report.training_set}" if report.training_set else "served features"
    parts = [f"{c[k]} {k}" for k in ("fail", "warn", "inconclusive", "pass") if c[k]]
    return (
        f"skew report: {what}: {STATUS_TEXT[report.status]} ({', '.join(parts)})\n"
        f"{log.served_rows:,} served rows in {report.served_file or 'the serving log'}, coverage {pct(log.coverage)},"
        f" {when(log.first_time)} .. {when(log.last_time)}"
    )


def checks_summary(f: FeatureSkew) -> str:
    bad = [c for c in f.checks if c.status != "pass"]
    return "; ".join(f"{c.name} {c.status}: {c.message}" for c in bad)
