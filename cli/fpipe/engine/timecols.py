"""Time: every timestamp becomes a UTC instant (datetime[us, UTC]), once, when a frame enters the engine.

Rules (SPEC section 3, "Time"):
- naive datetimes are read in the source's (or the project's) timezone;
- date-only values are midnight in that zone;
- aware values in any zone are converted to UTC (they compare as instants);
- strings are parsed (ISO 8601 by default, or `timestamp_format`); a column mixing naive and aware
  strings is an error;
- integers are epoch values in `time_unit` (s, ms, us, ns).
"""

from __future__ import annotations

import polars as pl

from fpipe.errors import DataError, Diagnostic
from fpipe.spec.model import SourceSpec

UTC_US = pl.Datetime("us", "UTC")
_OFFSET_RE = r"(Z|[+-]\d{2}:?\d{2})$"


class TimeColumnError(DataError):
    pass


def _fail(where: str, column: str, message: str, hint: str) -> TimeColumnError:
    return TimeColumnError(Diagnostic(f"column '{column}' {message}", file=where, hint=hint))


def to_utc(
    frame: pl.DataFrame,
    column: str,
    *,
    tz: str,
    where: str,
    timestamp_format: str | None = None,
    time_unit: str | None = None,
    out: str | None = None,
    strict: bool = True,
) -> pl.DataFrame:
    """Return `frame` with `out` (default: `column`) as datetime[us, UTC]. `where` names the file in errors.

    `strict=False`: string values that do not parse become null instead of an error (row checks use it to
    find and quarantine them, engine/checks.py)."""
    out = out or column
    if column not in frame.columns:
        raise _fail(
            where,
            column,
            "is missing",
            "columns present: " + ", ".join(frame.columns[:20]) + (" ..." if len(frame.columns) > 20 else ""),
        )
    s = frame.get_column(column)
    dtype = s.dtype
    if dtype == UTC_US:  # already UTC microseconds: the same column under its new name, no conversion pass
        return frame.with_columns(s.alias(out))
    try:
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:
                expr = pl.col(column).dt.replace_time_zone(tz, ambiguous="earliest", non_existent="raise")
            else:
                expr = pl.col(column)
            expr = expr.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        elif dtype == pl.Date:
            expr = (
                pl.col(column)
                .cast(pl.Datetime("us"))
                .dt.replace_time_zone(tz, ambiguous="earliest", non_existent="raise")
                .dt.convert_time_zone("UTC")
            )
        elif dtype.is_integer():
            if time_unit is None:
                raise _fail(
                    where,
                    column,
                    f"is {dtype}, expected a timestamp",
                    "set `time_unit: s` (or ms, us, ns) on the source if it holds epoch values",
                )
            expr = pl.from_epoch(pl.col(column), time_unit=time_unit).dt.replace_time_zone("UTC")  # type: ignore[call-overload]
        elif dtype == pl.String:
            return _parse_strings(frame, column, tz=tz, where=where, fmt=timestamp_format, out=out, strict=strict)
        elif dtype == pl.Null:
            expr = pl.col(column).cast(UTC_US)
        else:
            raise _fail(
                where,
                column,
                f"is {dtype}, expected a timestamp",
                "use a datetime, date, ISO string (or `timestamp_format:`), or epoch integers with `time_unit:`",
            )
        return frame.with_columns(expr.cast(UTC_US).alias(out))
    except pl.exceptions.ComputeError as exc:  # non-existent local times (DST gaps)
        raise _fail(
            where,
            column,
            f"has a local time that does not exist in {tz}: {str(exc).splitlines()[0]}",
            "store UTC or aware timestamps, or set the right `timezone:` on the source",
        ) from None


def source_time_to_utc(
    frame: pl.DataFrame, source: SourceSpec, column: str, *, project_tz: str, where: str, out: str, strict: bool = True
) -> pl.DataFrame:
    """`to_utc` of one of `source`'s time columns, read as the source declares them: its timezone (else the
    project's), `timestamp_format` and `time_unit`."""
    return to_utc(
        frame,
        column,
        tz=source.timezone or project_tz,
        where=where,
        timestamp_format=source.timestamp_format,
        time_unit=source.time_unit,
        out=out,
        strict=strict,
    )


def _parse_strings(
    frame: pl.DataFrame, column: str, *, tz: str, where: str, fmt: str | None, out: str, strict: bool = True
) -> pl.DataFrame:
    s = frame.get_column(column)
    non_null = s.drop_nulls()
    if fmt is not None:
        aware = "%z" in fmt or "%Z" in fmt
        parsed = s.str.strptime(pl.Datetime("us"), fmt, strict=False) if not aware else s.str.strptime(
            pl.Datetime("us", "UTC"), fmt, strict=False
        )
    else:
        has_offset = non_null.str.contains(_OFFSET_RE)
        n_aware = int(has_offset.sum())
        if 0 < n_aware < len(non_null):
            first_naive = non_null.filter(~has_offset)[0]
            first_aware = non_null.filter(has_offset)[0]
            raise _fail(
                where,
                column,
                f"mixes naive and aware timestamps (e.g. '{first_naive}' and '{first_aware}')",
                "store every value with an offset, or none (naive values are read in the source's timezone)",
            )
        aware = n_aware > 0
        if aware:
            parsed = s.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
        else:
            parsed = s.str.to_datetime(time_unit="us", strict=False)
    bad = parsed.is_null() & s.is_not_null()
    n_bad = int(bad.sum())
    if n_bad and strict:
        example = s.filter(bad)[0]
        row = int(bad.arg_true()[0])
        raise _fail(
            where,
            column,
            f"has {n_bad} unparseable timestamp(s), first at row {row}: '{example}'",
            "set `timestamp_format:` (strftime codes, e.g. '%d/%m/%Y %H:%M') on the source",
        )
    if not aware:
        try:
            parsed = parsed.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="raise")
        except pl.exceptions.ComputeError as exc:
            raise _fail(
                where,
                column,
                f"has a local time that does not exist in {tz}: {str(exc).splitlines()[0]}",
                "store UTC or aware timestamps, or set the right `timezone:`",
            ) from None
    return frame.with_columns(parsed.dt.convert_time_zone("UTC").cast(UTC_US).alias(out))
