"""The result of a skew report: plain data, JSON-ready. No Polars, no printing.

`SkewReport.to_json()` is the `--format json` document; its schema is docs/skew-report.schema.json
(`SCHEMA_VERSION` below). Every renderer reads only these objects.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from fpipe.spec.model import Thresholds

SCHEMA_VERSION = "1.0"

PASS, INCONCLUSIVE, WARN, FAIL = "pass", "inconclusive", "warn", "fail"
STATUS_RANK = {PASS: 0, INCONCLUSIVE: 1, WARN: 2, FAIL: 3}

ROW_CHECKS = ("coverage", "mismatch_rate")
DISTRIBUTION_CHECKS = ("psi", "category_share_change", "unseen_share", "null_rate_change")


def worst(statuses: list[str]) -> str:
    return max(statuses, key=lambda s: STATUS_RANK[s], default=PASS)


def gate_status(value: float | None, warn: float, fail: float, floor: float, direction: str) -> str:
    """Status of one gated metric.

    `above` metrics are bad when value >= threshold (mismatch_rate: when value > threshold);
    `below` metrics (coverage) are bad when value < threshold. A threshold that lies at or below the
    no-change noise floor cannot be told apart from chance: the status is then `inconclusive`.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return INCONCLUSIVE
    if direction == "below":
        if value < fail:
            return FAIL
        if value < warn:
            return WARN
        return PASS
    strict = direction == "above_strict"

    def over(threshold: float) -> bool:
        return value > threshold if strict else value >= threshold

    if floor >= fail:
        return INCONCLUSIVE
    if over(fail):
        return FAIL
    if floor >= warn:
        return INCONCLUSIVE
    if over(warn):
        return WARN
    return PASS


@dataclass
class Check:
    name: str  # coverage | mismatch_rate | psi | category_share_change | unseen_share | null_rate_change
    level: str  # row | distribution
    value: float | None
    warn: float
    fail: float
    direction: str  # below | above | above_strict
    noise_floor: float
    status: str
    message: str = ""


@dataclass
class TimeBucket:
    start: datetime
    rows: int
    mismatches: int

    @property
    def rate(self) -> float:
        return self.mismatches / self.rows if self.rows else 0.0


@dataclass
class RowMetrics:
    compared: int
    matches: int
    served_null_only: int  # served null (or NaN), offline has a value
    offline_null_only: int  # offline null (or NaN), served has a value
    bias: float | None  # mean(served - offline) over rows where both are finite numbers
    mae: float | None
    rel_err_median: float | None  # |s - o| / max(|s|, |o|), 0 when both are 0
    rel_err_p95: float | None
    first_mismatch_at: datetime | None = None
    last_mismatch_at: datetime | None = None
    started_at: datetime | None = None  # change point: mismatches start here (None: none, or throughout)
    rate_before: float | None = None
    rate_after: float | None = None
    bucket: str = ""  # width of the over_time buckets, e.g. '1h'
    over_time: list[TimeBucket] = field(default_factory=list)
    worst_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mismatches(self) -> int:
        return self.compared - self.matches

    @property
    def match_rate(self) -> float:
        return self.matches / self.compared if self.compared else float("nan")

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.compared if self.compared else float("nan")


@dataclass
class DistributionMetrics:
    kind: str  # numeric | categorical | other
    n_served: int  # non-null values compared
    n_offline: int
    null_rate_served: float
    null_rate_offline: float
    psi: float | None = None
    psi_bins: int | None = None
    ks: float | None = None
    wasserstein_over_std: float | None = None
    js_distance: float | None = None
    category_share_change: float | None = None
    category: str | None = None  # the category whose share changed most
    unseen_share: float | None = None

    @property
    def null_rate_change(self) -> float:
        return abs(self.null_rate_served - self.null_rate_offline)


@dataclass
class Candidate:
    cause: str  # ingestion_lag | cutoff_boundary | scale | offset | stale_value | null_filling | time_shift
    description: str  # "a 30s lag on source transactions"
    match_rate: float  # after applying the explanation
    explained: float  # share of the mismatches it removes: (after - before) / (1 - before)
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class Diagnosis:
    cause: str | None  # None: no single explanation removes at least half of the mismatches
    summary: str  # "ingestion lag: a 30s lag on source transactions"
    evidence: str  # "with a 30s lag on source transactions the match rate rises from 71.2% to 99.9%"
    match_rate_before: float
    match_rate_after: float | None
    parameters: dict[str, Any]
    candidates: list[Candidate]
    rows_used: int  # rows the explanations were tested on
    sampled: bool


@dataclass
class PlotData:
    """What the HTML report draws for a failing feature."""

    kind: str  # numeric | categorical
    labels: list[str]  # bin labels (numeric: lower edges) or categories
    edges: list[float]  # numeric: bin edges (len(labels) + 1); categorical: empty
    served: list[float]  # shares per bin
    offline: list[float]
    scatter: list[tuple[float, float, bool]] = field(default_factory=list)  # (offline, served, matches)


@dataclass
class FeatureSkew:
    name: str
    kind: str
    dtype_served: str
    dtype_offline: str
    thresholds: Thresholds
    checks: list[Check]
    row: RowMetrics
    distribution: DistributionMetrics
    diagnosis: Diagnosis | None = None
    plot: PlotData | None = None  # for the HTML report; not part of the JSON document

    @property
    def status(self) -> str:
        """fail > warn > inconclusive > pass. Inconclusive distribution checks do not make a feature
        inconclusive when its row-level checks pass: identical rows imply identical distributions."""
        hard = [c.status for c in self.checks if c.status in (FAIL, WARN)]
        if hard:
            return worst(hard)
        row_status = [c.status for c in self.checks if c.level == "row"]
        if INCONCLUSIVE in row_status:
            return INCONCLUSIVE
        if row_status:
            return PASS
        return worst([c.status for c in self.checks])

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)


@dataclass
class LogSummary:
    served_rows: int
    covered_rows: int  # served rows with a time that found their offline row
    null_keys: int
    null_times: int
    unmatched: int  # rows with keys and time whose offline row is missing
    duplicate_keys: int  # rows repeating an earlier row's (keys, time)
    duplicate_row_ids: int
    offline_duplicates: int  # offline rows repeating a join key (first kept)
    first_time: datetime | None
    last_time: datetime | None

    @property
    def coverage(self) -> float:
        return self.covered_rows / self.served_rows if self.served_rows else float("nan")


@dataclass
class SkewReport:
    features: list[FeatureSkew]
    log: LogSummary
    time_column: str
    key_columns: list[str]
    row_id_column: str | None = None
    training_set: str | None = None
    served_file: str | None = None
    fail_on: str = FAIL  # fail | warn
    notes: list[str] = field(default_factory=list)
    methods: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return worst([f.status for f in self.features])

    @property
    def exit_code(self) -> int:
        gate = {FAIL} if self.fail_on == FAIL else {FAIL, WARN}
        return 1 if any(f.status in gate for f in self.features) else 0

    def counts(self) -> dict[str, int]:
        out = {PASS: 0, INCONCLUSIVE: 0, WARN: 0, FAIL: 0}
        for f in self.features:
            out[f.status] += 1
        return out

    def feature(self, name: str) -> FeatureSkew:
        return next(f for f in self.features if f.name == name)

    def to_json(self) -> dict[str, Any]:
        from fpipe import __version__

        def feature_json(f: FeatureSkew) -> dict[str, Any]:
            row = asdict(f.row)
            row["mismatches"] = f.row.mismatches
            row["match_rate"] = f.row.match_rate
            row["mismatch_rate"] = f.row.mismatch_rate
            row["over_time"] = [
                {"start": b.start, "rows": b.rows, "mismatches": b.mismatches, "rate": b.rate} for b in f.row.over_time
            ]
            dist = asdict(f.distribution)
            dist["null_rate_change"] = f.distribution.null_rate_change
            return {
                "name": f.name,
                "status": f.status,
                "kind": f.kind,
                "dtype_served": f.dtype_served,
                "dtype_offline": f.dtype_offline,
                "thresholds": asdict(f.thresholds),
                "checks": [asdict(c) for c in f.checks],
                "row": row,
                "distribution": dist,
                "diagnosis": asdict(f.diagnosis) if f.diagnosis is not None else None,
            }

        doc = {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "fpipe", "version": __version__},
            "training_set": self.training_set,
            "served_file": self.served_file,
            "status": self.status,
            "fail_on": self.fail_on,
            "exit_code": self.exit_code,
            "summary": self.counts(),
            "time_column": self.time_column,
            "key_columns": list(self.key_columns),
            "row_id_column": self.row_id_column,
            "log": {**asdict(self.log), "coverage": self.log.coverage},
            "methods": self.methods,
            "features": [feature_json(f) for f in self.features],
            "notes": list(self.notes),
        }
        out: dict[str, Any] = _jsonable(doc)
        return out


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601, NaN/inf as null, everything else JSON-native."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool | int | str) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)
