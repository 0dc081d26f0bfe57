"""An independent, brute-force oracle of SPEC section 3 (semantics).

Pure Python (stdlib only). It imports nothing from fpipe but the spec dataclasses and the expression
*parser* (`fpipe.spec.expr.parse_expr`): expressions are evaluated here by a separate tiny evaluator.
Every rule is implemented literally, row by row, O(spine x rows); speed is no goal, legibility is.

Entry point: `build_oracle(defs, training_set, sources, spine_rows=None) -> OracleResult`.

Choices where SPEC section 3 is silent (the engine must match these; each is pinned in test_oracle.py):

Time
  * Naive datetimes are read in the source's `timezone`, else the project's (spine: the spine's, else the
    project's). Ambiguous local times take the first occurrence (fold=0); a local time that does not
    exist (skipped by a DST change) is an error. Dates are midnight there.
    Integer values with `time_unit` are epoch instants (UTC). Strings are parsed with `timestamp_format`.
  * A column mixing naive and aware values raises `ValueError`.
  * The spine time column is output normalised (aware UTC).
Visibility
  * visible(r, t) iff et(r) and avail(r) are non-null and `avail < t and et < t` (`<=` for inclusive):
    event time bounds everything. avail = `available_time` column when the source has one, else
    `event_time + lag`; a lag set together with an available_time column is added to it (SPEC names
    them as alternatives; adding is what a skew diagnosis sweeping lags needs).
  * A source without `event_time` is static: every row is visible at every non-null t; windows, ttl and
    hop do not apply to it; its rows are ordered by input position only.
Windows
  * `hop`: window start = floor((t - w) to a multiple of hop counted from the Unix epoch, 1970-01-01T00:00Z)
    -- rounded DOWN, so the tiled window is never shorter than w. The start edge keeps its cutoff rule
    (`start <= et` exclusive, `start < et` inclusive). Without `window`, hop is ignored.
Aggregations (nulls -- and NaN, read as null -- are ignored by every aggregation except `latest`)
  * count without column counts rows; with column, non-null values. Empty: 0.
  * sum: 0 (int 0 for an integer column, 0.0 otherwise) when empty; int stays int; floats use math.fsum.
  * mean, min, max, count_distinct over non-null values; std/var with ddof: null when fewer than ddof+1
    values (n - ddof <= 0).
  * first / last: the first / last row *with a non-null value* in the order (event_time, available_time,
    input position). (SPEC: "nulls in the column are ignored"; an all-null window is empty.)
  * last_k: the values of the last k rows with non-null value in that order, oldest first; empty -> null
    (not an empty list); k None -> every value.
  * time_since_last / time_since_first: float seconds `t - et` of the last / first row (rows with a
    non-null value in `column` when a column is given, else all rows); null when none.
  * latest: among the visible rows with et < t (<= inclusive), within ttl (`t - et <= ttl`), after
    `where`: the max by (event_time, available_time, input position); its value even if null, unless
    `skip_nulls` (then only rows with a non-null value compete).
  * default: replaces the result exactly when no value qualified (empty window for the column; for
    latest: no row qualified). It does NOT replace a null produced otherwise (std of one value, a latest
    row whose value is null).
  * `where` keeps a row iff the predicate is TRUE (null -> dropped), evaluated on the raw source columns
    (NaN read as null; the event/available time columns normalised to UTC).
  * `dtype` (int64/float64/string/bool) casts the final value; int64 from float truncates toward zero.
Keys
  * A null (or NaN) key part never matches; composite keys match on all parts (Python equality).
Labels
  * rows with non-null et, key match, `t + gap <= et < t + gap + horizon` (inclusive: `t + gap < et <=
    t + gap + horizon`); availability does not select label rows (null available_time rows count).
    first/last/latest order label rows like features, by (event_time, available_time, input position),
    a null available_time sorting after every non-null one (never available = later than anything).
  * observed_until = label's, else the source's, else the max non-null event_time over all rows of the
    label source (any key, no `where`). censored iff t is not null and (observed_until is None or
    t + gap + horizon > observed_until): the edge `==` is observed (not censored).
  * A spine row with null t is never censored (its label is the empty-window value). A null key does not
    protect a row from censoring (censoring depends on t only).
  * `default` replaces the empty-window value (count/sum 0 too), then `expr` is evaluated with the
    label's name bound to that value.
  * `spine_column` labels are not modelled.
Derived features
  * Evaluated with every feature of the definitions (computed lazily, also ones not in the training set)
    bound by name. SQL three-valued logic: null propagates through arithmetic, comparisons, NOT, IN;
    AND/OR are Kleene; CASE takes the first WHEN that is TRUE. `/` is true division, `x / 0` and `x % 0`
    are null; `%` follows Python's sign rule. sqrt/ln/log of out-of-domain values -> null.
    least/greatest ignore nulls; coalesce returns the first non-null.
Spines
  * file spine (or any `spine_rows` passed in): rows as given, in order, all their columns (key order of
    the first row); key columns per entity = spine.keys[entity], else the entity's keys; time column =
    `time`, else "spine_time".
  * source spine: one row per source row (input order) passing `where`; columns: the source's key columns
    (entities in mapping order, each column once), then the time column named `spine.time`, else the
    source's event_time column name when offset is 0, else "spine_time"; value = event_time + offset;
    then `columns`. Features look the keys up under the source's key column names.
  * schedule: ticks start, start+every, ... < end (start inclusive, end exclusive). Per tick, every
    distinct non-null key tuple of `entities_from` with a row whose event_time satisfies
    `tick - lookback <= et < tick` (no lookback: `et < tick`); availability is not consulted. Rows are
    ordered by tick, then key tuple ascending. Columns: the source's key columns, then `spine.time` or
    "spine_time".
    Without entities_from: one row per tick.
  * A spine row with null t or a null key part is kept and sees no rows.
Floats
  * Each float sum/mean/var/std cell carries an absolute tolerance of 1e-9 times the magnitude of the
    values inside its own window (`float_tolerance`), never of rows outside it; other floats 1e-9.
Output
  * columns: spine columns, features in training-set order, label, `<label>_censored` (flag only).
    Censored rows under `drop` are removed from `rows` and returned (spine columns only) in `censored`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fpipe.spec.expr import (
    Binary,
    Call,
    Case,
    Column,
    InList,
    IsNull,
    Literal,
    Node,
    Unary,
    parse_expr,
    referenced_names,
)
from fpipe.spec.model import Cutoff, Definitions, FeatureSpec, LabelSpec, SourceSpec, SpineSpec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}


# ---------------------------------------------------------------------------------------------- time
def to_utc(value: Any, tz: str, time_unit: str | None = None, fmt: str | None = None) -> datetime | None:
    """One timestamp value -> aware UTC datetime (None stays None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if fmt is None else datetime.strptime(value, fmt)
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int):
        unit = time_unit or "us"
        if unit == "ns":
            return EPOCH + timedelta(microseconds=value // 1000)
        return EPOCH + timedelta(microseconds=value * _UNIT_US[unit])
    if isinstance(value, datetime):
        if value.tzinfo is None:
            local = value.replace(tzinfo=ZoneInfo(tz), fold=0)
            instant = local.astimezone(UTC)
            if instant.astimezone(ZoneInfo(tz)).replace(tzinfo=None) != value:
                raise ValueError(f"local time {value} does not exist in {tz}")
            return instant
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)
    raise ValueError(f"not a timestamp: {value!r}")


def normalise_times(
    values: Sequence[Any], tz: str, time_unit: str | None = None, fmt: str | None = None
) -> list[datetime | None]:
    """A whole time column -> UTC. Mixing naive and aware datetimes in one column is an error."""
    kinds = set()
    for v in values:
        if isinstance(v, datetime):
            kinds.add(v.tzinfo is None)
    if len(kinds) > 1:
        raise ValueError("column mixes naive and aware timestamps")
    return [to_utc(v, tz, time_unit, fmt) for v in values]


def _null(v: Any) -> Any:
    """NaN is read as null."""
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


# ---------------------------------------------------------------------------------------- expressions
def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def eval_expr(node: Node, env: Mapping[str, Any]) -> Any:
    """Evaluate a parsed expression over one row (`env`: name -> value). See the module docstring."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Column):
        if node.name in env:
            return _null(env[node.name])
        raise KeyError(node.name)
    if isinstance(node, Unary):
        v = eval_expr(node.operand, env)
        if v is None:
            return None
        if node.op == "-":
            return -v
        return not v
    if isinstance(node, Binary):
        if node.op in ("and", "or"):
            a = eval_expr(node.left, env)
            b = eval_expr(node.right, env)
            if node.op == "and":
                if a is False or b is False:
                    return False
                if a is None or b is None:
                    return None
                return True
            if a is True or b is True:
                return True
            if a is None or b is None:
                return None
            return False
        a = eval_expr(node.left, env)
        b = eval_expr(node.right, env)
        if a is None or b is None:
            return None
        op = node.op
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                return None
            return a / b
        if op == "%":
            if b == 0:
                return None
            return a % b
        if op == "=":
            return a == b
        if op == "!=":
            return a != b
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        raise ValueError(f"unknown operator {op}")
    if isinstance(node, IsNull):
        v = eval_expr(node.operand, env)
        return (v is not None) if node.negated else (v is None)
    if isinstance(node, InList):
        v = eval_expr(node.operand, env)
        if v is None:
            return None
        if any(x is not None and x == v for x in node.values):
            found: bool | None = True
        elif any(x is None for x in node.values):
            found = None
        else:
            found = False
        if found is None:
            return None
        return (not found) if node.negated else found
    if isinstance(node, Case):
        for cond, val in node.whens:
            if eval_expr(cond, env) is True:
                return eval_expr(val, env)
        return eval_expr(node.otherwise, env) if node.otherwise is not None else None
    if isinstance(node, Call):
        return _call(node, env)
    raise ValueError(f"unknown node {node!r}")


def _call(node: Call, env: Mapping[str, Any]) -> Any:
    name = node.name
    args = [eval_expr(a, env) for a in node.args]
    if name == "coalesce":
        return next((a for a in args if a is not None), None)
    if name in ("least", "greatest"):
        vals = [a for a in args if a is not None]
        if not vals:
            return None
        return min(vals) if name == "least" else max(vals)
    if name == "nullif":
        a, b = args
        return None if (a is not None and b is not None and a == b) else a
    (a, *rest) = args
    if a is None:
        return None
    if name == "abs":
        return abs(a)
    if name == "sqrt":
        return math.sqrt(a) if a >= 0 else None
    if name in ("ln", "log"):
        return math.log(a) if a > 0 else None
    if name == "log10":
        return math.log10(a) if a > 0 else None
    if name == "exp":
        return math.exp(a)
    if name == "floor":
        return float(math.floor(a)) if isinstance(a, float) else a
    if name == "ceil":
        return float(math.ceil(a)) if isinstance(a, float) else a
    if name == "round":
        nd = rest[0] if rest else 0
        if nd is None:
            return None
        return round(a, nd) if isinstance(a, float) else a
    if name == "lower":
        return a.lower()
    if name == "upper":
        return a.upper()
    if name == "length":
        return len(a)
    if name == "hour":
        return a.astimezone(UTC).hour if a.tzinfo else a.hour
    if name == "day_of_week":
        return a.isoweekday()
    raise ValueError(f"unknown function {name}")


def _supertype(fams: Sequence[str | None]) -> str | None:
    known = {f for f in fams if f not in (None, "null")}
    if not known:
        return "null"
    if known <= {"int", "float"}:
        return "float" if "float" in known else "int"
    return known.pop() if len(known) == 1 else None


def expr_family(node: Node, names: Mapping[str, str | None]) -> str | None:
    """Static result type family of an expression (int/float/str/bool/null), given the names' families.

    As a typed columnar engine types a column once, not row by row: `coalesce(float_col, 0)` is float even
    on rows where the value came from the integer literal.
    """
    if isinstance(node, Literal):
        return _family_of_value(node.value) or "null"
    if isinstance(node, Column):
        return names.get(node.name)
    if isinstance(node, Unary):
        return "bool" if node.op == "not" else expr_family(node.operand, names)
    if isinstance(node, Binary):
        if node.op in ("and", "or", "=", "!=", "<", "<=", ">", ">="):
            return "bool"
        if node.op == "/":
            return "float"
        return _supertype([expr_family(node.left, names), expr_family(node.right, names)])
    if isinstance(node, IsNull | InList):
        return "bool"
    if isinstance(node, Case):
        branches = [v for _, v in node.whens] + ([node.otherwise] if node.otherwise is not None else [])
        return _supertype([expr_family(b, names) for b in branches])
    if isinstance(node, Call):
        args = [expr_family(a, names) for a in node.args]
        if node.name in ("coalesce", "least", "greatest"):
            return _supertype(args)
        if node.name in ("abs", "floor", "ceil", "round", "nullif"):
            return args[0]
        if node.name in ("sqrt", "ln", "log", "log10", "exp"):
            return "float"
        if node.name in ("lower", "upper"):
            return "str"
        return "int"  # length, hour, day_of_week
    return None


def _as_family(value: Any, family: str | None) -> Any:
    """An int computed row by row in a float-typed column is that float."""
    if family == "float" and _is_num(value):
        return float(value)
    return value


def _where(text: str | None, row: Mapping[str, Any]) -> bool:
    if text is None:
        return True
    return eval_expr(parse_expr(text), row) is True


# ------------------------------------------------------------------------------------------- sources
@dataclass
class Row:
    pos: int  # input position
    et: datetime | None  # UTC; None for a static source or a null event time
    avail: datetime | None  # UTC; None = never visible (not for a static source)
    values: dict[str, Any]  # raw columns, NaN -> None, time columns normalised


@dataclass
class Source:
    spec: SourceSpec
    rows: list[Row]
    static: bool
    max_et: datetime | None


def prepare_source(defs: Definitions, spec: SourceSpec, raw: Sequence[Mapping[str, Any]]) -> Source:
    tz = defs.source_timezone(spec)
    cols: dict[str, list[Any]] = {}
    for r in raw:
        for c in r:
            cols.setdefault(c, [])
    values = [{c: _null(r.get(c)) for c in cols} for r in raw]
    time_cols = [c for c in (spec.event_time, spec.available_time) if c is not None]
    for c in time_cols:
        norm = normalise_times([v.get(c) for v in values], tz, spec.time_unit, spec.timestamp_format)
        for v, n in zip(values, norm, strict=True):
            v[c] = n
    rows: list[Row] = []
    for pos, v in enumerate(values):
        et = v.get(spec.event_time) if spec.event_time else None
        if spec.available_time is not None:
            avail = v.get(spec.available_time)
            if avail is not None:
                avail = avail + spec.lag
        else:
            avail = et + spec.lag if et is not None else None
        rows.append(Row(pos, et, avail, v))
    ets = [r.et for r in rows if r.et is not None]
    return Source(spec, rows, spec.event_time is None, max(ets) if ets else None)


def _key_of(values: Mapping[str, Any], cols: Sequence[str]) -> tuple[Any, ...] | None:
    """The key tuple, or None when any part is null (a null key never matches)."""
    out = []
    for c in cols:
        v = _null(values.get(c))
        if v is None:
            return None
        out.append(v)
    return tuple(out)


def visible(src: Source, r: Row, t: datetime, cutoff: Cutoff) -> bool:
    """SPEC visibility, with event time bounding everything."""
    if src.static:
        return True
    if r.et is None or r.avail is None:
        return False
    if cutoff is Cutoff.INCLUSIVE:
        return r.avail <= t and r.et <= t
    return r.avail < t and r.et < t


def hop_floor(instant: datetime, hop: timedelta) -> datetime:
    """Round down to a multiple of `hop` since the Unix epoch (UTC)."""
    return EPOCH + ((instant - EPOCH) // hop) * hop


# ------------------------------------------------------------------------------------------ aggregation
_NO_VALUE = object()  # marks "no value qualified": default applies


def _order_key(r: Row) -> tuple[Any, ...]:
    """(event_time, available_time, input position); a null available_time (only possible in a label
    window) sorts after every non-null one: never available is later than any availability."""
    return (r.et or EPOCH, r.avail is None, r.avail or EPOCH, r.pos)


def aggregate(
    agg: str,
    column: str | None,
    rows: list[Row],
    t: datetime,
    *,
    int_column: bool,
    ddof: int = 1,
    k: int | None = None,
    skip_nulls: bool = False,
) -> Any:
    """One aggregation over already-selected rows. Returns _NO_VALUE when no value qualified."""
    if agg == "count":
        n = len(rows) if column is None else sum(1 for r in rows if r.values.get(column) is not None)
        return n if n else _NO_VALUE
    ordered = sorted(rows, key=_order_key)
    if agg == "latest":
        cands = [r for r in ordered if not skip_nulls or r.values.get(column) is not None]
        return cands[-1].values.get(column) if cands else _NO_VALUE
    if agg in ("time_since_last", "time_since_first"):
        cands = [r for r in ordered if column is None or r.values.get(column) is not None]
        if not cands:
            return _NO_VALUE
        r = cands[-1] if agg == "time_since_last" else cands[0]
        if r.et is None:
            return None
        return (t - r.et) / timedelta(seconds=1)
    assert column is not None
    vals = [r.values.get(column) for r in ordered]
    vals = [v for v in vals if v is not None]
    if not vals:
        return _NO_VALUE
    if agg == "sum":
        if int_column:
            return sum(int(v) for v in vals)
        return math.fsum(vals)
    if agg == "mean":
        return math.fsum(vals) / len(vals)
    if agg == "min":
        return min(vals)
    if agg == "max":
        return max(vals)
    if agg in ("std", "var"):
        n = len(vals)
        if n < ddof + 1:
            return None
        m = math.fsum(vals) / n
        var = math.fsum((v - m) ** 2 for v in vals) / (n - ddof)
        return math.sqrt(var) if agg == "std" else var
    if agg == "count_distinct":
        return len(set(vals))
    if agg == "first":
        return vals[0]
    if agg == "last":
        return vals[-1]
    if agg == "last_k":
        return list(vals[-k:]) if k is not None else list(vals)
    raise ValueError(f"unknown aggregation {agg}")


BASE_TOL = 1e-9


def float_tolerance(agg: str, rows: list[Row], column: str | None, ddof: int, value: Any) -> float:
    """The absolute error a correct float aggregation may make: 1e-9 of the magnitude of the values in
    the window itself (sum: sum |v|; mean: that / n; var: sum v^2 / (n - ddof); std: from var's).

    It depends only on the rows inside the window, so an engine that lets rows outside the window into
    the arithmetic (a difference of running totals) is still caught.
    """
    if not isinstance(value, float) or column is None or agg not in ("sum", "mean", "var", "std"):
        return BASE_TOL
    vals = [abs(v) for v in (r.values.get(column) for r in rows) if _is_num(v)]
    if not vals:
        return BASE_TOL
    if agg == "sum":
        tol = BASE_TOL * math.fsum(vals)
    elif agg == "mean":
        tol = BASE_TOL * math.fsum(vals) / len(vals)
    else:
        tv = BASE_TOL * math.fsum(v * v for v in vals) / max(1, len(vals) - ddof)
        tol = tv if agg == "var" else (max(BASE_TOL * value, tv / (2 * value)) if value > 0 else math.sqrt(tv))
    return max(BASE_TOL, tol)


def _elevated(tol: float, value: Any) -> bool:
    return tol > BASE_TOL * max(1.0, abs(value) if _is_num(value) else 1.0)


def _empty_value(agg: str, int_column: bool) -> Any:
    if agg in ("count", "count_distinct"):
        return 0
    if agg == "sum":
        return 0 if int_column else 0.0
    return None


def cast(value: Any, dtype: str | None) -> Any:
    if dtype is None or value is None:
        return value
    d = dtype.lower()
    if d in ("int64", "int"):
        return int(value)
    if d in ("float64", "float"):
        return float(value)
    if d in ("bool", "boolean"):
        return bool(value)
    if d in ("string", "str"):
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    raise ValueError(f"unknown dtype {dtype}")


# ----------------------------------------------------------------------------------------------- result
@dataclass
class OracleResult:
    columns: list[str]
    rows: list[dict[str, Any]]
    censored: list[dict[str, Any]]  # spine columns of the rows dropped by `censor: drop`
    families: dict[str, str | None] = field(default_factory=dict)  # column -> int/float/str/bool/datetime/list
    # per output row: column -> absolute tolerance for float cells whose exact value is ill-conditioned
    # (see `float_tolerance`); math.inf: a derived value of such inputs, not comparable
    tolerances: list[dict[str, float]] = field(default_factory=list)


def _family_of_value(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, datetime):
        return "datetime"
    if isinstance(v, date):
        return "date"
    if isinstance(v, list):
        return "list"
    return type(v).__name__


def _family_of_values(vals: Sequence[Any]) -> str | None:
    fams = {_family_of_value(v) for v in vals} - {None}
    if not fams:
        return None
    if fams <= {"int", "float"}:
        return "float" if "float" in fams else "int"
    if len(fams) == 1:
        return fams.pop()
    raise ValueError(f"mixed value types {fams}")


# ------------------------------------------------------------------------------------------------ oracle
class _Builder:
    def __init__(
        self,
        defs: Definitions,
        sources: Mapping[str, Sequence[Mapping[str, Any]]],
        column_types: Mapping[str, Mapping[str, str]] | None,
    ) -> None:
        self.defs = defs
        self.raw = sources
        self.column_types = column_types or {}
        self._sources: dict[str, Source] = {}

    def source(self, name: str) -> Source:
        if name not in self._sources:
            self._sources[name] = prepare_source(self.defs, self.defs.sources[name], self.raw.get(name, []))
        return self._sources[name]

    def column_family(self, source: str, column: str | None) -> str | None:
        if column is None:
            return None
        declared = self.column_types.get(source, {}).get(column)
        if declared is not None:
            return declared
        return _family_of_values([r.values.get(column) for r in self.source(source).rows])

    # ---- spines
    def spine(self, spec: SpineSpec, spine_rows: Sequence[Mapping[str, Any]] | None,
              spine_columns: Sequence[str] | None = None) -> tuple[
        list[str], list[dict[str, Any]], str
    ]:
        """-> (columns, rows with the time column normalised, time column name)."""
        tz = spec.timezone or self.defs.timezone
        if spine_rows is not None or spec.kind == "file":
            rows_in = list(spine_rows or [])
            time_col = spec.time or "spine_time"
            cols: list[str] = list(spine_columns or [])
            for r in rows_in:
                for c in r:
                    if c not in cols:
                        cols.append(c)
            if spec.columns is not None:
                keys = [c for e in self._spine_entities(spec) for c in self._spine_key_cols(spec, e)]
                cols = [*dict.fromkeys([*keys, time_col, *spec.columns])]
            times = normalise_times([r.get(time_col) for r in rows_in], tz, spec.time_unit, spec.timestamp_format)
            out = []
            for r, t in zip(rows_in, times, strict=True):
                d = {c: r.get(c) for c in cols}
                d[time_col] = t
                out.append(d)
            return cols, out, time_col
        if spec.kind == "source":
            assert spec.source is not None
            src = self.source(spec.source)
            time_col = spec.time or (src.spec.event_time if not spec.offset else None) or "spine_time"
            key_map: list[tuple[str, str]] = []  # (output name, source column)
            for scols in src.spec.keys.values():
                for scol in scols:
                    if scol not in [o for o, _ in key_map]:
                        key_map.append((scol, scol))
            extra = [c for c in (spec.columns or ()) if c not in [o for o, _ in key_map] and c != time_col]
            cols = [o for o, _ in key_map] + [time_col] + extra
            out = []
            for r in src.rows:
                if not _where(spec.where, r.values):
                    continue
                d = {o: r.values.get(s) for o, s in key_map}
                d[time_col] = r.et + spec.offset if r.et is not None else None
                for c in extra:
                    d[c] = r.values.get(c)
                out.append(d)
            return cols, out, time_col
        # schedule
        assert spec.every is not None and spec.start is not None and spec.end is not None
        start = to_utc(spec.start, tz)
        end = to_utc(spec.end, tz)
        assert start is not None and end is not None
        ticks = []
        tick = start
        while tick < end:
            ticks.append(tick)
            tick = tick + spec.every
        time_col = spec.time or "spine_time"
        if spec.entities_from is None:
            return [time_col], [{time_col: tk} for tk in ticks], time_col
        src = self.source(spec.entities_from)
        key_map = []
        for scols in src.spec.keys.values():
            for scol in scols:
                if scol not in [o for o, _ in key_map]:
                    key_map.append((scol, scol))
        out = []
        for tk in ticks:
            seen: set[tuple[Any, ...]] = set()
            for r in src.rows:
                key = _key_of(r.values, [s for _, s in key_map])
                if key is None or r.et is None or not r.et < tk:
                    continue
                if spec.lookback is not None and not tk - spec.lookback <= r.et:
                    continue
                seen.add(key)
            for key in sorted(seen):
                d = {o: v for (o, _), v in zip(key_map, key, strict=True)}
                d[time_col] = tk
                out.append(d)
        return [o for o, _ in key_map] + [time_col], out, time_col

    def _spine_entities(self, spec: SpineSpec) -> list[str]:
        return list(spec.keys) if spec.keys else []

    def _spine_key_cols(self, spec: SpineSpec, entity: str) -> tuple[str, ...]:
        if entity in spec.keys:
            return tuple(spec.keys[entity])
        src_name = spec.source if spec.kind == "source" else spec.entities_from if spec.kind == "schedule" else None
        if src_name is not None and entity in self.defs.sources[src_name].keys:
            return tuple(self.defs.sources[src_name].keys[entity])
        return self.defs.entities[entity].keys

    # ---- features
    def feature(self, f: FeatureSpec, spine_spec: SpineSpec, srow: Mapping[str, Any], t: datetime | None,
                memo: dict[str, Any]) -> Any:
        if f.name in memo:
            return memo[f.name]
        if f.is_derived:
            assert f.expr is not None
            node = parse_expr(f.expr)
            env = _LazyEnv(self, spine_spec, srow, t, memo)
            value = cast(_as_family(eval_expr(node, env), self.feature_family(f)), f.dtype)
            memo[f.name] = value
            inputs = [n for n, _ in referenced_names(node)]
            ill = any(_elevated(memo.get(("tol", n), BASE_TOL), memo.get(n)) for n in inputs)
            memo[("tol", f.name)] = math.inf if ill else BASE_TOL
            return value
        assert f.source is not None and f.entity is not None and f.agg is not None
        src = self.source(f.source)
        int_column = self.column_family(f.source, f.column) in ("int", "bool")
        cutoff = self.defs.feature_cutoff(f)
        key = _key_of(srow, self._spine_key_cols(spine_spec, f.entity))
        selected: list[Row] = []
        if t is not None and key is not None:
            scols = src.spec.keys[f.entity]
            for r in src.rows:
                if _key_of(r.values, scols) != key:
                    continue
                if not visible(src, r, t, cutoff):
                    continue
                if not src.static and r.et is not None:
                    if f.window is not None:
                        start = t - f.window
                        if f.hop is not None:
                            start = hop_floor(start, f.hop)
                        inside = start < r.et if cutoff is Cutoff.INCLUSIVE else start <= r.et
                        if not inside:
                            continue
                    if f.agg == "latest" and f.ttl is not None and not (t - r.et <= f.ttl):
                        continue
                if not _where(f.where, r.values):
                    continue
                selected.append(r)
        assert t is not None or not selected
        value = aggregate(
            f.agg, f.column, selected, t or EPOCH, int_column=int_column, ddof=f.ddof, k=f.k,
            skip_nulls=f.skip_nulls,
        )
        memo[("tol", f.name)] = float_tolerance(f.agg, selected, f.column, f.ddof, value)
        if value is _NO_VALUE:
            value = f.default if f.default is not None else _empty_value(f.agg, int_column)
        value = cast(value, f.dtype)
        memo[f.name] = value
        return value

    def feature_family(self, f: FeatureSpec) -> str | None:
        if f.dtype is not None:
            d = f.dtype.lower()
            return {"int64": "int", "int": "int", "float64": "float", "float": "float", "string": "str",
                    "str": "str", "bool": "bool", "boolean": "bool"}[d]
        if f.is_derived:
            assert f.expr is not None
            node = parse_expr(f.expr)
            names = {n: self.feature_family(self.defs.features[n]) for n, _ in referenced_names(node)}
            return expr_family(node, names)
        assert f.agg is not None and f.source is not None
        return _agg_family(f.agg, self.column_family(f.source, f.column))

    # ---- labels
    def label(self, lab: LabelSpec, spine_spec: SpineSpec, srow: Mapping[str, Any], t: datetime | None
              ) -> tuple[Any, bool, float]:
        """-> (label value, censored, tolerance)."""
        assert lab.source is not None and lab.entity is not None and lab.horizon is not None
        src = self.source(lab.source)
        int_column = self.column_family(lab.source, lab.column) in ("int", "bool")
        cutoff = self.defs.label_cutoff(lab)
        key = _key_of(srow, self._spine_key_cols(spine_spec, lab.entity))
        selected: list[Row] = []
        censored = False
        if t is not None:
            lo = t + lab.gap
            hi = t + lab.gap + lab.horizon
            observed = lab.observed_until or src.spec.observed_until
            observed_utc = (
                to_utc(observed, self.defs.source_timezone(src.spec)) if observed is not None else src.max_et
            )
            censored = observed_utc is None or hi > observed_utc
            if key is not None:
                for r in src.rows:
                    if r.et is None or _key_of(r.values, src.spec.keys[lab.entity]) != key:
                        continue
                    inside = (lo < r.et <= hi) if cutoff is Cutoff.INCLUSIVE else (lo <= r.et < hi)
                    if inside and _where(lab.where, r.values):
                        selected.append(r)
        value = aggregate(lab.agg, lab.column, selected, t or EPOCH, int_column=int_column)
        tol = float_tolerance(lab.agg, selected, lab.column, 1, value)
        if value is _NO_VALUE:
            value = lab.default if lab.default is not None else _empty_value(lab.agg, int_column)
        if lab.expr is not None:
            tol = math.inf if _elevated(tol, value) else BASE_TOL
            value = _as_family(eval_expr(parse_expr(lab.expr), {lab.name: value}), self.label_family(lab))
        return value, censored, tol

    def label_family(self, lab: LabelSpec) -> str | None:
        assert lab.source is not None
        fam = _agg_family(lab.agg, self.column_family(lab.source, lab.column))
        if lab.expr is not None:
            return expr_family(parse_expr(lab.expr), {lab.name: fam})
        return fam


class _LazyEnv(Mapping[str, Any]):
    """Feature name -> value for one spine row, computed on demand (derived features' dependencies)."""

    def __init__(self, b: _Builder, spine_spec: SpineSpec, srow: Mapping[str, Any], t: datetime | None,
                 memo: dict[str, Any]) -> None:
        self.b, self.spine_spec, self.srow, self.t, self.memo = b, spine_spec, srow, t, memo

    def __getitem__(self, name: str) -> Any:
        return self.b.feature(self.b.defs.features[name], self.spine_spec, self.srow, self.t, self.memo)

    def __contains__(self, name: object) -> bool:
        return name in self.b.defs.features

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.b.defs.features)

    def __len__(self) -> int:
        return len(self.b.defs.features)


def _agg_family(agg: str, column_family: str | None) -> str | None:
    if agg in ("count", "count_distinct"):
        return "int"
    if agg == "sum":
        return "int" if column_family in ("int", "bool") else "float"
    if agg in ("mean", "std", "var", "time_since_last", "time_since_first"):
        return "float"
    if agg == "last_k":
        return "list"
    return column_family


def build_oracle(
    defs: Definitions,
    training_set: str,
    sources: Mapping[str, Sequence[Mapping[str, Any]]],
    spine_rows: Sequence[Mapping[str, Any]] | None = None,
    column_types: Mapping[str, Mapping[str, str]] | None = None,
    spine_columns: Sequence[str] | None = None,
) -> OracleResult:
    """Build one training set by brute force.

    `sources`: source name -> raw rows (dicts). `spine_rows`: the rows of a file spine (also used, when
    given, in place of any other spine kind). `column_types`: optional source -> column -> family
    (int/float/str/bool) for columns whose type cannot be inferred from their values (all null).
    `spine_columns`: the file spine's columns (needed when it has no rows).
    """
    ts = defs.training_sets[training_set]
    b = _Builder(defs, sources, column_types)
    spine_spec = defs.spines[ts.spine]
    spine_cols, spine, time_col = b.spine(spine_spec, spine_rows, spine_columns)
    features = [defs.features[n] for n in ts.features]
    label = defs.labels[ts.label] if ts.label is not None else None
    columns = list(spine_cols) + [f.name for f in features]
    if label is not None:
        columns.append(label.name)
        if label.censor == "flag":
            columns.append(f"{label.name}_censored")
    rows: list[dict[str, Any]] = []
    tolerances: list[dict[str, float]] = []
    censored: list[dict[str, Any]] = []
    for srow in spine:
        t = srow.get(time_col)
        memo: dict[str, Any] = {}
        out = dict(srow)
        for f in features:
            out[f.name] = b.feature(f, spine_spec, srow, t, memo)
        if label is not None:
            value, is_censored, label_tol = b.label(label, spine_spec, srow, t)
            out[label.name] = value
            memo[("tol", label.name)] = label_tol
            if label.censor == "flag":
                out[f"{label.name}_censored"] = is_censored
            elif is_censored:
                censored.append(dict(srow))
                continue
        rows.append({c: out[c] for c in columns})
        tolerances.append({c: memo[("tol", c)] for c in columns if memo.get(("tol", c), BASE_TOL) != BASE_TOL})
    families: dict[str, str | None] = {c: _family_of_values([r.get(c) for r in spine]) for c in spine_cols}
    families[time_col] = "datetime"
    for f in features:
        families[f.name] = b.feature_family(f)
    if label is not None:
        families[label.name] = b.label_family(label)
        if label.censor == "flag":
            families[f"{label.name}_censored"] = "bool"
    return OracleResult(columns, rows, censored, families, tolerances)
