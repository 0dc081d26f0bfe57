"""Row checks (`checks:` per source column): vectorised Polars over a whole source -> its failing rows.

Each check is one boolean expression over the frame; a row fails when any of its checks fails, and its
`_reason` lists every failed check, `; `-separated, e.g. `amount -5.0 < min 0; currency 'GBP' not in [USD, EUR]`.

- `not_null`: null (or NaN, which the engine reads as null) fails.
- `min` / `max`: numeric columns; `value < min` / `value > max` fails; nulls pass (use `not_null`).
- `in`: a non-null value outside the list fails (SQL semantics: a null is not "not in").
- `regex`: a non-null value that does not match the whole pattern fails (`^(?:pattern)$`).
- `unique`: every later occurrence (input order) of a non-null value fails, naming the row it repeats;
  the first one is kept. A check column named `a, b` checks the pair (composite key).
- `type` (int64, float64, string, bool, datetime): a column of another type is a column problem; a
  string column is checked value by value (values that do not convert fail).
- Timestamps: string values of `event_time` / `available_time` that do not parse fail (only when
  `timestamps=True`; otherwise the engine raises on them, engine/timecols.py).

Failing rows carry `_pos`, their position in input order (0-based, the order of engine/visibility.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from fpipe.engine.timecols import source_time_to_utc
from fpipe.errors import Diagnostic, display_path
from fpipe.spec.model import CheckSpec, SourceSpec

REASON = "_reason"
POS = "_pos"

_TYPE_OK = {
    "int64": lambda t: t.is_integer(),
    "int": lambda t: t.is_integer(),
    "float64": lambda t: t.is_numeric(),
    "float": lambda t: t.is_numeric(),
    "string": lambda t: t == pl.String,
    "str": lambda t: t == pl.String,
    "bool": lambda t: t == pl.Boolean,
    "boolean": lambda t: t == pl.Boolean,
    "datetime": lambda t: isinstance(t, pl.Datetime) or t == pl.Date,
    "date": lambda t: isinstance(t, pl.Datetime) or t == pl.Date,
}
_CAST_TO: dict[str, pl.DataType] = {"int64": pl.Int64(), "int": pl.Int64(), "float64": pl.Float64(), "float": pl.Float64()}


@dataclass
class CheckCount:
    """How many rows failed one check (`check` as written: `not_null`, `min`, `in`, ... or `timestamp`)."""

    column: str
    check: str
    failed: int
    example: str | None = None


@dataclass
class SourceChecks:
    """The outcome of a source's checks. `failed`: the failing rows (`_pos`, the columns, `_reason`)."""

    source: str
    on_fail: str
    rows: int
    failed: pl.DataFrame
    counts: list[CheckCount] = field(default_factory=list)
    column_problems: list[Diagnostic] = field(default_factory=list)
    where: str | None = None  # the file, for messages

    @property
    def n_failed(self) -> int:
        return self.failed.height

    @property
    def ok(self) -> bool:
        return self.n_failed == 0 and not self.column_problems


def check_columns(source: SourceSpec) -> list[str]:
    """The source columns the checks read."""
    cols: list[str] = []
    for chk in source.checks:
        cols.extend(split_columns(chk.column))
    return list(dict.fromkeys(cols))


def split_columns(name: str) -> list[str]:
    """`a, b` (a composite-key check) -> [a, b]; a plain name -> [name]."""
    return [c.strip() for c in name.split(",")] if "," in name else [name]


def _lit_list(values: tuple[object, ...]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def _value(col: str, dtype: pl.DataType) -> pl.Expr:
    """The column as a number with NaN read as null (the engine's reading)."""
    e = pl.col(col)
    return e.fill_nan(None) if dtype in (pl.Float32, pl.Float64) else e


def _show(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.String).fill_null("null")


class _Rules:
    def __init__(self, frame: pl.DataFrame, where: str) -> None:
        self.frame = frame
        self.where = where
        self.rules: list[tuple[str, str, pl.Expr, pl.Expr]] = []  # (column, check, fails, reason)
        self.problems: list[Diagnostic] = []

    def add(self, column: str, check: str, fails: pl.Expr, reason: pl.Expr) -> None:
        self.rules.append((column, check, fails.fill_null(False), reason))

    def problem(self, message: str, hint: str | None = None) -> None:
        self.problems.append(Diagnostic(message, file=self.where, hint=hint))


def _column_rules(r: _Rules, chk: CheckSpec, source: SourceSpec) -> None:
    cols = split_columns(chk.column)
    missing = [c for c in cols if c not in r.frame.columns]
    if missing:
        r.problem(
            f"source '{source.name}': checked column '{missing[0]}' is missing",
            hint="columns present: " + ", ".join(c for c in r.frame.columns if not c.startswith("_")),
        )
        return
    if chk.unique:
        keyed = pl.all_horizontal([pl.col(c).is_not_null() for c in cols])
        struct = pl.struct(cols) if len(cols) > 1 else pl.col(cols[0])
        first = pl.col(POS).min().over(cols)
        shown = pl.concat_str([_show(c) for c in cols], separator=", ")
        r.add(chk.column, "unique", keyed & ~struct.is_first_distinct(), pl.format("{} {} repeats row {}", pl.lit(chk.column), shown, first))
    if len(cols) > 1:
        if chk.not_null or chk.min is not None or chk.max is not None or chk.allowed is not None or chk.regex or chk.dtype:
            r.problem(f"source '{source.name}': only `unique` applies to the column pair '{chk.column}'")
        return
    c = cols[0]
    dtype = r.frame.schema[c]
    if chk.not_null:
        isnull = pl.col(c).is_null()
        if dtype in (pl.Float32, pl.Float64):
            isnull = isnull | pl.col(c).is_nan()
        r.add(c, "not_null", isnull, pl.lit(f"{c} is null"))
    if chk.min is not None or chk.max is not None:
        if not (dtype.is_numeric() or dtype == pl.Null):
            r.problem(f"source '{source.name}': column '{c}' is {dtype}, but `min`/`max` need numbers", hint="cast it upstream, or check it with `in` or `regex`")
        else:
            v = _value(c, dtype)
            if chk.min is not None:
                r.add(c, "min", v < chk.min, pl.format("{} {} < min {}", pl.lit(c), _show(c), pl.lit(_num(chk.min))))
            if chk.max is not None:
                r.add(c, "max", v > chk.max, pl.format("{} {} > max {}", pl.lit(c), _show(c), pl.lit(_num(chk.max))))
    if chk.allowed is not None:
        allowed = list(chk.allowed)
        if dtype == pl.String:
            member = pl.col(c).is_in([str(a) for a in allowed])
        else:
            member = pl.col(c).is_in(pl.Series(allowed, strict=False).cast(dtype, strict=False).drop_nulls())
        r.add(c, "in", pl.col(c).is_not_null() & ~member, pl.format("{} '{}' not in {}", pl.lit(c), _show(c), pl.lit(_lit_list(chk.allowed))))
    if chk.regex:
        import re

        try:
            re.compile(chk.regex)
        except re.error as exc:
            r.problem(f"source '{source.name}': bad regex for column '{c}': {exc}")
        else:
            text = pl.col(c) if dtype == pl.String else pl.col(c).cast(pl.String)
            matches = text.str.contains(f"^(?:{chk.regex})$")
            r.add(c, "regex", pl.col(c).is_not_null() & ~matches, pl.format("{} '{}' does not match /{}/", pl.lit(c), _show(c), pl.lit(chk.regex)))
    if chk.dtype:
        _type_rule(r, c, dtype, chk.dtype.lower(), source)


def _type_rule(r: _Rules, c: str, dtype: pl.DataType, want: str, source: SourceSpec) -> None:
    ok = _TYPE_OK.get(want)
    if ok is None:
        r.problem(f"source '{source.name}': unknown check type '{want}' for column '{c}'", hint="int64, float64, string, bool or datetime")
        return
    if ok(dtype) or dtype == pl.Null:
        return
    if dtype == pl.String and want in _CAST_TO:
        bad = pl.col(c).is_not_null() & pl.col(c).str.strip_chars().cast(_CAST_TO[want], strict=False).is_null()
        r.add(c, "type", bad, pl.format("{} '{}' is not {}", pl.lit(c), _show(c), pl.lit(want)))
        return
    if dtype == pl.String and want in ("bool", "boolean"):
        bad = pl.col(c).is_not_null() & ~pl.col(c).str.to_lowercase().is_in(["true", "false"])
        r.add(c, "type", bad, pl.format("{} '{}' is not bool", pl.lit(c), _show(c)))
        return
    if dtype == pl.String and want in ("datetime", "date"):
        bad = pl.col(c).is_not_null() & pl.col(c).str.to_datetime(strict=False).is_null()
        r.add(c, "type", bad, pl.format("{} '{}' is not a datetime", pl.lit(c), _show(c)))
        return
    r.problem(f"source '{source.name}': column '{c}' is {dtype}, expected {want}", hint="cast it upstream, or fix the `type:` check")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _timestamp_rules(r: _Rules, source: SourceSpec, project_tz: str) -> None:
    for col in (source.event_time, source.available_time):
        if col is None or col not in r.frame.columns or r.frame.schema[col] != pl.String:
            continue
        parsed = source_time_to_utc(
            r.frame.select(col), source, col, project_tz=project_tz, where=r.where, out="_parsed", strict=False
        ).get_column("_parsed")
        unparseable = r.frame.get_column(col).is_not_null() & parsed.is_null()
        if unparseable.any():
            r.add(col, "timestamp", pl.lit(unparseable), pl.format("{} '{}' is not a timestamp", pl.lit(col), _show(col)))


def run_checks(
    frame: pl.DataFrame, source: SourceSpec, project_tz: str, *, timestamps: bool = True, where: str | None = None
) -> SourceChecks:
    """Run every check of `source` over `frame` (raw, as read). Raises DataError only for malformed time columns."""
    where = where or display_path(source.path)
    base = frame if POS in frame.columns else frame.with_row_index(POS).with_columns(pl.col(POS).cast(pl.Int64))
    r = _Rules(base, where)
    for chk in source.checks:
        _column_rules(r, chk, source)
    if timestamps:
        _timestamp_rules(r, source, project_tz)
    empty = base.head(0).with_columns(pl.lit(None, pl.String).alias(REASON))
    if not r.rules or base.height == 0:
        return SourceChecks(source.name, source.on_fail, frame.height, empty, [], r.problems, where)
    flags = base.select([fails.alias(f"_f{i}") for i, (_, _, fails, _) in enumerate(r.rules)])
    sums = flags.sum().row(0)
    counts: list[CheckCount] = []
    active = []
    for i, ((col, check, _fails, reason), n) in enumerate(zip(r.rules, sums, strict=True)):
        if n:
            counts.append(CheckCount(col, check, int(n)))
            active.append((i, reason))
        else:
            counts.append(CheckCount(col, check, 0))
    if not active:
        return SourceChecks(source.name, source.on_fail, frame.height, empty, counts, r.problems, where)
    # reasons are computed over the whole frame (window expressions such as `unique` need every row)
    tagged = base.with_columns(flags.select([f"_f{i}" for i, _ in active])).with_columns(
        [pl.when(pl.col(f"_f{i}")).then(expr).alias(f"_r{i}") for i, expr in active]
    )
    any_fail = pl.any_horizontal([pl.col(f"_f{i}") for i, _ in active])
    failed = tagged.filter(any_fail)
    examples = failed.select([pl.col(f"_r{i}").drop_nulls().first() for i, _ in active]).row(0)
    by_check = {(c.column, c.check): c for c in counts}
    for (i, _), ex in zip(active, examples, strict=True):
        col, check, _f, _e = r.rules[i]
        by_check[(col, check)].example = ex
    reason = pl.concat_str([pl.col(f"_r{i}") for i, _ in active], separator="; ", ignore_nulls=True).alias(REASON)
    failed = failed.with_columns(reason).drop([c for i, _ in active for c in (f"_f{i}", f"_r{i}")])
    return SourceChecks(source.name, source.on_fail, frame.height, failed, counts, r.problems, where)


def drop_failed(frame: pl.DataFrame, result: SourceChecks) -> pl.DataFrame:
    """The rows of `frame` (in input order) that passed every check."""
    if result.n_failed == 0:
        return frame
    bad = result.failed.get_column(POS)
    return frame.with_row_index("_chk_pos").filter(~pl.col("_chk_pos").cast(pl.Int64).is_in(bad.implode())).drop("_chk_pos")


def null_unparseable(frame: pl.DataFrame, source: SourceSpec, project_tz: str) -> pl.DataFrame:
    """Under `on_fail: warn`: unparseable time strings become null (the row is then never visible, counted)."""
    out = frame
    for col in (source.event_time, source.available_time):
        if col is None or col not in frame.columns or frame.schema[col] != pl.String:
            continue
        parsed = source_time_to_utc(
            frame.select(col), source, col, project_tz=project_tz, where=display_path(source.path), out="_parsed", strict=False
        ).get_column("_parsed")
        out = out.with_columns(pl.when(parsed.is_null()).then(None).otherwise(pl.col(col)).alias(col))
    return out


def quarantine_frame(results: list[SourceChecks]) -> pl.DataFrame:
    """One frame of every failing row: `_source`, `_pos`, `_reason`, then the union of the sources' columns."""
    parts = []
    for res in results:
        if res.n_failed == 0:
            continue
        f = res.failed
        parts.append(f.select([pl.lit(res.source).alias("_source"), POS, REASON, *[c for c in f.columns if c not in (POS, REASON)]]))
    if not parts:
        return pl.DataFrame(schema={"_source": pl.String, POS: pl.Int64, REASON: pl.String})
    try:
        return pl.concat(parts, how="diagonal_relaxed")
    except pl.exceptions.PolarsError:  # incompatible column types across sources: keep everything as text
        return pl.concat([p.cast(pl.String).with_columns(pl.col(POS).cast(pl.Int64)) for p in parts], how="diagonal")


@dataclass
class ChecksOutcome:
    """Checks applied to the frames of one run: what each source kept, set aside or only warned about."""

    results: dict[str, SourceChecks]
    quarantine: pl.DataFrame

    def counts(self) -> dict[str, dict[str, object]]:
        """Per source: rows read, used, quarantined, warned (read = used + quarantined), failures per check."""
        out: dict[str, dict[str, object]] = {}
        for name, res in self.results.items():
            quarantined = res.n_failed if res.on_fail == "quarantine" else 0
            out[name] = {
                "on_fail": res.on_fail,
                "read": res.rows,
                "used": res.rows - quarantined,
                "quarantined": quarantined,
                "warned": res.n_failed if res.on_fail == "warn" else 0,
                "failed_checks": {f"{c.column}: {c.check}": c.failed for c in res.counts if c.failed},
            }
        return out

    @property
    def n_quarantined(self) -> int:
        return self.quarantine.height


def failure_diagnostics(res: SourceChecks, severity: str = "error") -> list[Diagnostic]:
    """One located line per failing check (and per column problem)."""
    out = [dataclass_replace(p, severity=severity) for p in res.column_problems]
    for c in res.counts:
        if not c.failed:
            continue
        what = f"{c.failed} row{'s' if c.failed != 1 else ''}"
        if c.check == "timestamp":
            text = f"{what} {'have' if c.failed != 1 else 'has'} an unparseable timestamp in '{c.column}'"
        else:
            text = f"{what} fail{'s' if c.failed == 1 else ''} check '{c.check}' on '{c.column}'"
        out.append(
            Diagnostic(
                f"source '{res.source}': {text}, e.g. {c.example}",
                file=res.where,
                severity=severity,
            )
        )
    return out


def dataclass_replace(d: Diagnostic, **changes: object) -> Diagnostic:
    import dataclasses

    return dataclasses.replace(d, **changes)  # type: ignore[arg-type]


def apply_checks(
    sources: Mapping[str, SourceSpec], frames: Mapping[str, pl.DataFrame], project_tz: str, where: Mapping[str, str] | None = None
) -> tuple[dict[str, pl.DataFrame], ChecksOutcome]:
    """Apply each source's checks by its `on_fail`: `fail` raises ChecksFailed (exit 1) when a row fails;
    `quarantine` removes failing rows (returned with their `_reason`); `warn` keeps them (unparseable times
    become null: never visible). Sources without checks pass through untouched."""
    from fpipe.errors import ChecksFailed

    clean: dict[str, pl.DataFrame] = {}
    results: dict[str, SourceChecks] = {}
    problems: list[Diagnostic] = []
    for name, frame in frames.items():
        src = sources[name]
        if not src.checks and src.on_fail == "fail":
            clean[name] = frame
            continue
        file = (where or {}).get(name, display_path(src.path))
        # under `fail`, unparseable timestamps stay the engine's data error (exit 2, engine/timecols.py)
        res = run_checks(frame, src, project_tz, timestamps=src.on_fail != "fail", where=file)
        results[name] = res
        if src.on_fail == "quarantine":
            if res.column_problems:
                problems.extend(res.column_problems)
            clean[name] = drop_failed(frame, res)
        elif src.on_fail == "warn":
            clean[name] = null_unparseable(frame, src, project_tz)
        else:
            problems.extend(failure_diagnostics(res))
            clean[name] = frame
    if problems:
        for p in problems:
            if p.hint is None:
                problems[problems.index(p)] = dataclass_replace(
                    p, hint="set `on_fail: quarantine` on the source to set failing rows aside (or `warn` to keep them); `fpipe validate --data` lists them"
                )
                break
        raise ChecksFailed(problems)
    return clean, ChecksOutcome(results, quarantine_frame(list(results.values())))
