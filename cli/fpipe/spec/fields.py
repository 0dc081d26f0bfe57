"""The one table of definition fields: the loader checks YAML against it, `fpipe schema` renders it.

Each section of the YAML (SPEC section 2) maps names to items; each item kind has a table of fields.
A `Field` says what a value must look like (`kind`), what it is for (`description`, shown in hints and in
the JSON Schema), whether it is required, its allowed values and which kind of definition it refers to.
"""

from __future__ import annotations

from dataclasses import dataclass

from fpipe.spec.model import AGGREGATIONS, Cutoff

CUTOFFS: tuple[str, ...] = tuple(c.value for c in Cutoff)
CENSOR: tuple[str, ...] = ("drop", "flag")
FORMATS: tuple[str, ...] = ("parquet", "csv", "ndjson")
TIME_UNITS: tuple[str, ...] = ("s", "ms", "us", "ns")
ON_FAIL: tuple[str, ...] = ("fail", "quarantine", "warn")
DTYPES: tuple[str, ...] = ("int64", "float64", "string", "bool")
OBJECTIVES: tuple[str, ...] = (
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "reg:squarederror",
    "reg:squaredlogerror",
    "reg:absoluteerror",
    "reg:pseudohubererror",
    "reg:logistic",
    "reg:quantileerror",
    "reg:gamma",
    "reg:tweedie",
    "count:poisson",
    "multi:softprob",
    "multi:softmax",
    "rank:ndcg",
    "rank:pairwise",
    "rank:map",
    "survival:cox",
    "survival:aft",
)

# Field kinds (what the loader accepts, and the JSON Schema type it becomes):
#   name      a string naming something (entity, column, ...); refs name another definition (`ref`)
#   str       any string          expr   an expression (spec/expr.py)   path  a file, glob or folder
#   duration  '7d', '1h30m', '-2h' (spec/durations.py)                  datetime  ISO string or YAML timestamp
#   bool int number any           enum   one of `choices`
#   names     a list of names     columns  a list of column names       values  a list of scalars
#   keys      entity -> column or list of columns                       mapping  free-form mapping
#   str_map   name -> string      number_map  name -> number
#   checks    column -> CHECK fields                                    thresholds  THRESHOLD fields
#   thresholds_map  feature -> THRESHOLD fields
#   split     SPLIT fields (a model's time split: fractions or dates, and the purge gap)
KINDS: frozenset[str] = frozenset(
    {
        "name",
        "str",
        "expr",
        "path",
        "duration",
        "datetime",
        "bool",
        "int",
        "number",
        "any",
        "enum",
        "names",
        "columns",
        "values",
        "keys",
        "mapping",
        "str_map",
        "number_map",
        "checks",
        "thresholds",
        "thresholds_map",
        "split",
    }
)


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    description: str
    required: bool = False
    choices: tuple[str, ...] = ()
    ref: str | None = None  # section whose names this field refers to ('entities', 'sources', ...)


def _table(*fields: Field) -> dict[str, Field]:
    for f in fields:
        assert f.kind in KINDS, f.kind
    return {f.name: f for f in fields}


ENTITY = _table(
    Field("keys", "columns", "The entity's key column names; several for a composite key.", required=True),
    Field("description", "str", "Free text."),
)

CHECK = _table(
    Field("not_null", "bool", "The column must have no nulls."),
    Field("min", "number", "Smallest allowed value."),
    Field("max", "number", "Largest allowed value."),
    Field("in", "values", "The allowed values."),
    Field("regex", "str", "Strings must match this regular expression."),
    Field("unique", "bool", "Values must be unique."),
    Field("type", "str", "Expected column type, e.g. int64, float64, string, bool, datetime."),
)

SOURCE = _table(
    Field("path", "path", "Parquet/CSV/NDJSON file, glob or hive-partitioned folder, relative to this YAML file.", required=True),
    Field("event_time", "name", "Column holding when the event happened; omit for a static table."),
    Field("available_time", "name", "Column holding when serving could first see the row."),
    Field("lag", "duration", "Fixed availability lag: available = event_time + lag (default 0s)."),
    Field("keys", "keys", "Entity -> column(s) of this source, one column per entity key.", ref="entities"),
    Field("format", "enum", "File format; default: from the file extension.", choices=FORMATS),
    Field("timezone", "str", "Zone of naive timestamps in this source; default: the project's."),
    Field("timestamp_format", "str", "strptime format of string time columns."),
    Field("time_unit", "enum", "Unit of integer epoch time columns.", choices=TIME_UNITS),
    Field("cutoff", "enum", "Visibility at t: exclusive (avail < t) or inclusive (avail <= t).", choices=CUTOFFS),
    Field("observed_until", "datetime", "End of the observed data, for label censoring; default: the latest event_time."),
    Field("checks", "checks", "Row checks per column, run by `fpipe validate --data`."),
    Field("on_fail", "enum", "What failing rows do: fail the run, go to quarantine, or warn.", choices=ON_FAIL),
    Field("description", "str", "Free text."),
)

FEATURE = _table(
    Field("entity", "name", "The entity this feature is keyed by.", ref="entities"),
    Field("source", "name", "The source it aggregates.", ref="sources"),
    Field("column", "name", "The source column it aggregates (count and time_since_* need none)."),
    Field("agg", "enum", "The aggregation over visible rows.", choices=AGGREGATIONS),
    Field("window", "duration", "Look-back window length (t - window <= event_time < t); default: all rows."),
    Field("where", "expr", "Row filter over source columns, e.g. \"status = 'approved'\"."),
    Field("default", "any", "Value when no row qualifies."),
    Field("ttl", "duration", "latest only: ignore rows older than ttl (t - event_time <= ttl); omit for unbounded."),
    Field("hop", "duration", "Round the window start down to a multiple of hop (tiled online systems)."),
    Field("cutoff", "enum", "Overrides the source's and project's cutoff.", choices=CUTOFFS),
    Field("skip_nulls", "bool", "latest/first/last: skip rows whose column is null."),
    Field("k", "int", "last_k: how many values."),
    Field("ddof", "int", "std/var: delta degrees of freedom (default 1)."),
    Field("expr", "expr", "Derived feature: expression over other features of the same row."),
    Field("dtype", "enum", "Cast the result to this type.", choices=DTYPES),
    Field("description", "str", "Free text."),
)

LABEL = _table(
    Field("entity", "name", "The entity this label is keyed by.", ref="entities"),
    Field("source", "name", "The source of future events.", ref="sources"),
    Field("column", "name", "The source column it aggregates (count needs none)."),
    Field("agg", "enum", "The aggregation over the forward window (default count).", choices=AGGREGATIONS),
    Field("horizon", "duration", "Forward window length: t + gap <= event_time < t + gap + horizon."),
    Field("gap", "duration", "Delay between t and the start of the label window (default 0s)."),
    Field("where", "expr", "Row filter over source columns."),
    Field("default", "any", "Value of an empty label window, before expr."),
    Field("expr", "expr", "Expression over the label's own aggregate, named by the label, e.g. 'fraud_30d > 0'."),
    Field("censor", "enum", "Rows whose label window is not fully observed: drop them or flag them.", choices=CENSOR),
    Field("observed_until", "datetime", "Overrides the source's end of observed data."),
    Field("cutoff", "enum", "Overrides the source's and project's cutoff.", choices=CUTOFFS),
    Field("spine_column", "name", "The label is this column of the spine (no source, no horizon)."),
    Field("description", "str", "Free text."),
)

SPINE = _table(
    Field("source", "name", "One spine row per row of this source, at event_time + offset.", ref="sources"),
    Field("offset", "duration", "Spine time = event_time + offset (-2h: two hours before)."),
    Field("where", "expr", "Row filter over source columns."),
    Field("path", "path", "A file of prediction instants, relative to this YAML file."),
    Field("time", "name", "Time column of the file (or output name of the spine time)."),
    Field("keys", "keys", "Entity -> column(s) of the spine file.", ref="entities"),
    Field("format", "enum", "File format; default: from the file extension.", choices=FORMATS),
    Field("timezone", "str", "Zone of naive timestamps in the file; default: the project's."),
    Field("timestamp_format", "str", "strptime format of a string time column."),
    Field("time_unit", "enum", "Unit of an integer epoch time column.", choices=TIME_UNITS),
    Field("columns", "columns", "Extra columns passed through to the training set."),
    Field("every", "duration", "A schedule: one tick every this long."),
    Field("start", "datetime", "Schedule start (naive: the project's timezone)."),
    Field("end", "datetime", "Schedule end (naive: the project's timezone)."),
    Field("entities_from", "name", "Source whose entities get a row at every tick.", ref="sources"),
    Field("lookback", "duration", "An entity gets a row if seen in entities_from within lookback before the tick."),
    Field("description", "str", "Free text."),
)

TRAINING_SET = _table(
    Field("spine", "name", "Where the prediction instants come from.", required=True, ref="spines"),
    Field("features", "names", "The features, in output order.", required=True, ref="features"),
    Field("label", "name", "The label (optional).", ref="labels"),
    Field("description", "str", "Free text."),
)

SPLIT = _table(
    Field("train", "number", "Share of the rows (in time order) for training; default 0.7."),
    Field("valid", "number", "Share for early stopping; default 0.15."),
    Field("test", "number", "Share, the latest rows, for the test metrics; default 0.15."),
    Field("valid_start", "datetime", "First instant of the validation period (with test_start, instead of shares)."),
    Field("test_start", "datetime", "First instant of the test period."),
    Field("train_start", "datetime", "Accepted and checked, but not used by training yet."),
    Field("test_end", "datetime", "Accepted and checked, but not used by training yet."),
    Field("gap", "duration", "Purge gap between the periods; default and minimum: the label's gap + horizon."),
)

MODEL = _table(
    Field("training_set", "name", "The training set it learns from.", required=True, ref="training_sets"),
    Field("objective", "enum", "XGBoost objective.", choices=OBJECTIVES),
    Field("params", "mapping", "XGBoost parameters, e.g. {max_depth: 6}."),
    Field("features", "names", "A subset of the training set's features; default: all.", ref="features"),
    Field("split", "split", "Time-ordered split: fractions or dates, and gap."),
    Field("num_boost_round", "int", "Maximum boosting rounds."),
    Field("early_stopping_rounds", "int", "Stop after this many rounds without improvement."),
    Field("seed", "int", "Random seed."),
    Field("gates", "number_map", "Export only if the metrics pass, e.g. {min_auc: 0.7}."),
    Field("description", "str", "Free text."),
)

SERVING_LOG = _table(
    Field("path", "path", "The served-feature log, relative to this YAML file.", required=True),
    Field("time", "name", "Column holding when the request was served.", required=True),
    Field("row_id", "name", "Column identifying a request."),
    Field("keys", "keys", "Entity -> column(s) of the log; default: the entity's key names.", ref="entities"),
    Field("columns", "str_map", "Feature -> served column; default: the feature's own name."),
    Field("format", "enum", "File format; default: from the file extension.", choices=FORMATS),
    Field("timezone", "str", "Zone of naive timestamps in the log; default: the project's."),
    Field("description", "str", "Free text."),
)

THRESHOLDS = _table(
    Field("coverage_warn", "number", "Warn when the share of served rows matched is below this."),
    Field("coverage_fail", "number", "Fail when the share of served rows matched is below this."),
    Field("mismatch_warn", "number", "Warn when the share of mismatching values is above this."),
    Field("mismatch_fail", "number", "Fail when the share of mismatching values is above this."),
    Field("psi_warn", "number", "Warn when the population stability index is above this."),
    Field("psi_fail", "number", "Fail when the population stability index is above this."),
    Field("category_warn", "number", "Warn when a category's share differs by more than this."),
    Field("category_fail", "number", "Fail when a category's share differs by more than this."),
    Field("null_rate_warn", "number", "Warn when null rates differ by more than this."),
    Field("null_rate_fail", "number", "Fail when null rates differ by more than this."),
    Field("atol", "number", "Absolute tolerance when comparing numbers."),
    Field("rtol", "number", "Relative tolerance when comparing numbers."),
)

SKEW = _table(
    Field("defaults", "thresholds", "Thresholds for every feature."),
    Field("features", "thresholds_map", "Per-feature overrides, merged over the defaults.", ref="features"),
)


@dataclass(frozen=True)
class Section:
    name: str  # YAML key
    kind: str  # singular, used in messages: "feature 'x'"
    fields: dict[str, Field]
    description: str


SECTIONS: dict[str, Section] = {
    s.name: s
    for s in (
        Section("entities", "entity", ENTITY, "What features are keyed by: name -> {keys: [...]}."),
        Section("sources", "source", SOURCE, "Event logs and tables: name -> source."),
        Section("features", "feature", FEATURE, "Point-in-time aggregations, lookups and derived expressions."),
        Section("labels", "label", LABEL, "Forward-looking targets over future events."),
        Section("spines", "spine", SPINE, "Where prediction instants come from: a source, a file or a schedule."),
        Section("training_sets", "training set", TRAINING_SET, "Spine + features (+ label)."),
        Section("models", "model", MODEL, "XGBoost models trained on a training set."),
        Section("serving_logs", "serving log", SERVING_LOG, "Served features, keyed by training set name."),
    )
}

TOP_LEVEL = _table(
    Field("timezone", "str", "Zone of naive timestamps (IANA name, default UTC)."),
    Field("cutoff", "enum", "Project-wide visibility: exclusive (avail < t, default) or inclusive.", choices=CUTOFFS),
    Field("skew", "mapping", "Train/serve skew thresholds: {defaults: {...}, features: {name: {...}}}."),
    *(Field(s.name, "mapping", s.description) for s in SECTIONS.values()),
)
