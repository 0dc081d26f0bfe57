"""Parsed definitions: frozen, typed objects. No Polars here, no file IO.

The loader (spec/loader.py) turns the YAML of SPEC section 2 into these; every other layer reads only
these. Paths are already resolved against the folder of the YAML file that names them. Durations are
`timedelta`s (spec/durations.py). Each object keeps the `Location` of its YAML node so later layers can
report located errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_LOCATION = Location("<memory>", 0, 0)


class Cutoff(StrEnum):
    EXCLUSIVE = "exclusive"  # visible iff avail < t; windows t-w <= et < t; lookups et < t
    INCLUSIVE = "inclusive"  # visible iff avail <= t; windows t-w < et <= t; lookups et <= t


# Aggregations for features (over the past) and labels (over the future).
AGGREGATIONS: tuple[str, ...] = (
    "count",
    "sum",
    "mean",
    "min",
    "max",
    "std",
    "var",
    "count_distinct",
    "first",
    "last",
    "last_k",
    "time_since_last",
    "time_since_first",
    "latest",
)
# Aggregations that work without `column` (they count or time rows).
AGGS_WITHOUT_COLUMN: frozenset[str] = frozenset({"count", "time_since_last", "time_since_first"})
# Aggregations that must not have a window (lookups) -- `latest` uses `ttl` instead.
LOOKUP_AGGS: frozenset[str] = frozenset({"latest"})


@dataclass(frozen=True)
class EntitySpec:
    name: str
    keys: tuple[str, ...]  # the entity's key names; spines and serving logs use these column names by default
    loc: Location = NO_LOCATION


@dataclass(frozen=True)
class CheckSpec:
    """Row checks on one source column (`checks: {amount: {not_null: true, min: 0}}`)."""

    column: str
    not_null: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None  # YAML key `in`
    regex: str | None = None
    unique: bool = False
    dtype: str | None = None  # YAML key `type`
    loc: Location = NO_LOCATION


@dataclass(frozen=True)
class SourceSpec:
    name: str
    path: str  # absolute path, glob or folder (hive-partitioned when a folder)
    event_time: str | None  # None: a static table, every row visible at every instant
    keys: Mapping[str, tuple[str, ...]]  # entity name -> column(s) of this source, in the entity's key order
    format: str | None = None  # parquet | csv | ndjson; None: from the file extension
    available_time: str | None = None
    lag: timedelta = timedelta(0)
    timezone: str | None = None  # naive timestamps are read in this zone; None: the project's
    timestamp_format: str | None = None  # strptime format for string time columns
    time_unit: str | None = None  # s | ms | us | ns for integer epoch time columns
    cutoff: Cutoff | None = None  # None: the project's
    observed_until: datetime | None = None  # for label censoring; None: the source's latest event_time
    checks: tuple[CheckSpec, ...] = ()
    on_fail: str = "fail"  # quarantine | fail | warn
    loc: Location = NO_LOCATION


@dataclass(frozen=True)
class FeatureSpec:
    """A feature: an aggregation/lookup over a source, or a derived expression (`expr`)."""

    name: str
    entity: str | None = None
    source: str | None = None
    column: str | None = None
    agg: str | None = None
    window: timedelta | None = None  # None: all visible rows before t
    where: str | None = None  # row filter expression over source columns (see spec/expr.py)
    default: Any = None
    ttl: timedelta | None = None  # latest only: t - event_time <= ttl
    hop: timedelta | None = None  # round the window start down to a multiple of hop (tiled online systems)
    cutoff: Cutoff | None = None  # None: the source's, else the project's
    skip_nulls: bool = False  # latest/first/last: skip rows whose column is null
    k: int | None = None  # last_k
    ddof: int = 1  # std/var
    expr: str | None = None  # derived feature: expression over other features of the same row
    dtype: str | None = None  # optional cast of the result (int64, float64, string, bool)
    description: str | None = None
    loc: Location = NO_LOCATION

    @property
    def is_derived(self) -> bool:
        return self.expr is not None


@dataclass(frozen=True)
class LabelSpec:
    """A label: an aggregation over a forward window `t + gap <= et < t + gap + horizon` (exclusive)."""

    name: str
    entity: str | None = None
    source: str | None = None
    column: str | None = None
    agg: str = "count"
    horizon: timedelta | None = None
    gap: timedelta = timedelta(0)
    where: str | None = None
    default: Any = None
    expr: str | None = None  # over the label's own aggregate, named by the label's name: `fraud_30d > 0`
    censor: str = "drop"  # drop | flag
    observed_until: datetime | None = None  # overrides the source's
    cutoff: Cutoff | None = None
    spine_column: str | None = None  # the label is a column the spine already has
    loc: Location = NO_LOCATION


@dataclass(frozen=True)
class SpineSpec:
    """Where prediction instants come from: a source, a file, or a schedule."""

    name: str
    # from a source: one spine row per source row
    source: str | None = None
    offset: timedelta = timedelta(0)  # spine time = event_time + offset
    where: str | None = None
    # from a file
    path: str | None = None
    time: str | None = None  # time column of the file (or output name of the spine time)
    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # entity -> column(s)
    format: str | None = None
    timezone: str | None = None
    timestamp_format: str | None = None
    time_unit: str | None = None
    columns: tuple[str, ...] | None = None  # extra columns passed through (None: all for files, keys only for sources)
    # a schedule
    every: timedelta | None = None
    start: datetime | None = None
    end: datetime | None = None
    entities_from: str | None = None  # source name whose entities get a row at every tick
    lookback: timedelta | None = None  # entity present if seen in entities_from within lookback before the tick
    loc: Location = NO_LOCATION

    @property
    def kind(self) -> str:
        if self.every is not None:
            return "schedule"
        if self.path is not None:
            return "file"
        return "source"


@dataclass(frozen=True)
class TrainingSetSpec:
    name: str
    spine: str
    features: tuple[str, ...]
    label: str | None = None
    description: str | None = None
    loc: Location = NO_LOCATION


@dataclass(frozen=True)
class ModelSpec:
    name: str
    training_set: str
    objective: str = "binary:logistic"
    params: Mapping[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] | None = None  # None: every feature of the training set
    # train/valid/test shares or dates, gap; from the loader: dates as UTC datetimes, gap as a timedelta
    split: Mapping[str, Any] = field(default_factory=dict)
    split_as_written: Mapping[str, Any] | None = None  # the YAML values, recorded in the model's metadata
    num_boost_round: int = 500
    early_stopping_rounds: int = 30
    seed: int = 0
    gates: Mapping[str, float] = field(default_factory=dict)  # min_auc, max_logloss, ...
    loc: Location = NO_LOCATION


@dataclass(frozen=True)
class ServingLogSpec:
    name: str  # the training set it serves
    path: str
    time: str
    row_id: str | None = None
    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # entity -> column(s); default: entity keys
    columns: Mapping[str, str] = field(default_factory=dict)  # feature -> served column; default: same name
    format: str | None = None
    timezone: str | None = None
    loc: Location = NO_LOCATION


@dataclass(frozen=True)
class Thresholds:
    coverage_warn: float = 0.99
    coverage_fail: float = 0.95
    mismatch_warn: float = 0.001
    mismatch_fail: float = 0.01
    psi_warn: float = 0.1
    psi_fail: float = 0.25
    category_warn: float = 0.05
    category_fail: float = 0.10
    null_rate_warn: float = 0.01
    null_rate_fail: float = 0.05
    atol: float = 1e-9
    rtol: float = 1e-6


@dataclass(frozen=True)
class SkewSpec:
    defaults: Thresholds = field(default_factory=Thresholds)
    features: Mapping[str, Thresholds] = field(default_factory=dict)  # per-feature overrides (merged over defaults)
    loc: Location = NO_LOCATION

    def for_feature(self, name: str) -> Thresholds:
        return self.features.get(name, self.defaults)


@dataclass(frozen=True)
class Definitions:
    """The merged definitions of one project (every YAML file under --defs)."""

    root: str  # the --defs folder, absolute
    files: tuple[str, ...] = ()
    timezone: str = "UTC"
    cutoff: Cutoff = Cutoff.EXCLUSIVE
    entities: Mapping[str, EntitySpec] = field(default_factory=dict)
    sources: Mapping[str, SourceSpec] = field(default_factory=dict)
    features: Mapping[str, FeatureSpec] = field(default_factory=dict)
    labels: Mapping[str, LabelSpec] = field(default_factory=dict)
    spines: Mapping[str, SpineSpec] = field(default_factory=dict)
    training_sets: Mapping[str, TrainingSetSpec] = field(default_factory=dict)
    models: Mapping[str, ModelSpec] = field(default_factory=dict)
    serving_logs: Mapping[str, ServingLogSpec] = field(default_factory=dict)
    skew: SkewSpec = field(default_factory=SkewSpec)

    # --- resolution helpers (pure; no validation here: the loader has validated references) ---
    def feature_cutoff(self, feature: FeatureSpec) -> Cutoff:
        if feature.cutoff is not None:
            return feature.cutoff
        if feature.source is not None:
            src_cutoff = self.sources[feature.source].cutoff
            if src_cutoff is not None:
                return src_cutoff
        return self.cutoff

    def label_cutoff(self, label: LabelSpec) -> Cutoff:
        if label.cutoff is not None:
            return label.cutoff
        if label.source is not None:
            src_cutoff = self.sources[label.source].cutoff
            if src_cutoff is not None:
                return src_cutoff
        return self.cutoff

    def source_timezone(self, source: SourceSpec) -> str:
        return source.timezone or self.timezone
