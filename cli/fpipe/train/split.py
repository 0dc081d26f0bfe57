"""Time-ordered splits with a purge gap: the one place a model's train / valid / test periods are decided.

Rows are assigned by spine time, never at random: train is `t < valid_start`, valid is
`valid_start <= t < test_start`, test is `t >= test_start`. A label at t looks at events up to
`t + label.gap + label.horizon` (exclusive), so a row is kept in an earlier set only when
`t + purge_gap <= boundary`; rows with `boundary - purge_gap < t < boundary` are dropped and counted.
The purge gap defaults to the label's reach (gap + horizon) and may never be configured shorter.

Boundaries come from dates (`split: {valid_start: 2024-03-01, test_start: 2024-04-01, gap: 30d}`) or
from fractions of rows in time order (`split: {train: 0.7, valid: 0.15, test: 0.15}`, the default).
The spec loader checks the keys and parses the dates (UTC datetimes) and the gap, with located errors at
`fpipe validate`; this module reads the parsed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from fpipe.errors import DataError, DefinitionError, Diagnostic
from fpipe.spec.durations import DurationError, parse_duration
from fpipe.spec.durations import format_duration as _format_duration
from fpipe.spec.fields import SPLIT
from fpipe.spec.model import NO_LOCATION, LabelSpec, Location

DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
SPLIT_KEYS = tuple(SPLIT)  # the loader checks them against the same table (spec/fields.py)
US = 1_000_000


@dataclass(frozen=True)
class Split:
    """Row indices (into the frame as given) of each part, and what the purge removed."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    valid_start: int  # microseconds since the epoch, UTC
    test_start: int
    gap: timedelta
    purged: dict[str, int] = field(default_factory=dict)  # part -> rows dropped in the gap after it

    def ranges(self, times_us: np.ndarray) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for part, idx in (("train", self.train), ("valid", self.valid), ("test", self.test)):
            t = times_us[idx]
            out[part] = {
                "rows": len(idx),
                "start": iso(int(t.min())) if len(t) else None,
                "end": iso(int(t.max())) if len(t) else None,
            }
        return out


def format_duration(td: timedelta) -> str:
    """`30d` rather than `4w2d`: whole days read best in split messages."""
    if td > timedelta(0) and td % timedelta(days=1) == timedelta(0):
        return f"{td.days}d"
    return _format_duration(td)


def iso(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def epoch_us(times: Any, tz: str = "UTC", where: str = "training set") -> np.ndarray:
    """A polars time series as UTC microseconds, read as the engine reads time columns (`engine.timecols.to_utc`:
    naive values in `tz`, the project's zone); `where` names the table in errors."""
    from fpipe.engine.timecols import to_utc

    return np.asarray(to_utc(times.to_frame(), times.name, tz=tz, where=where).to_series().dt.epoch("us").to_numpy())


def label_reach(label: LabelSpec | None) -> timedelta:
    """How far past t a label looks: its gap plus its horizon (0 for labels taken from the spine)."""
    if label is None:
        return timedelta(0)
    return label.gap + (label.horizon or timedelta(0))


def _bad(model: str, loc: Location, message: str, hint: str) -> DefinitionError:
    file = loc.file if loc != NO_LOCATION else None
    return DefinitionError(
        Diagnostic(message, file=file, line=loc.line if file else None, col=loc.col if file else None, hint=hint)
    )


def resolve_gap(split_cfg: Mapping[str, Any], label: LabelSpec | None, model: str, loc: Location = NO_LOCATION) -> timedelta:
    """The purge gap: `split.gap` if set (never shorter than the label's reach), else the reach."""
    reach = label_reach(label)
    raw = split_cfg.get("gap")
    if raw is None:
        return reach
    if isinstance(raw, timedelta):
        gap = raw
    else:
        try:
            gap = parse_duration(raw)
        except DurationError as exc:
            raise _bad(model, loc, f"model '{model}': split.gap: {exc.reason}", exc.hint) from None
    if gap < reach:
        label_name = label.name if label is not None else "?"
        horizon = label.horizon or timedelta(0) if label is not None else timedelta(0)
        extra = f" + gap {format_duration(label.gap)}" if label is not None and label.gap else ""
        raise _bad(
            model,
            loc,
            f"model '{model}': split.gap {format_duration(gap)} is shorter than label '{label_name}' looks ahead "
            f"(horizon {format_duration(horizon)}{extra} = {format_duration(reach)}); "
            "training labels would overlap the validation and test periods",
            f"set split.gap to at least {format_duration(reach)}, or leave it out (it defaults to the label's reach)",
        )
    return gap


def _to_us(value: Any, tz: str, model: str, key: str, loc: Location) -> int:
    """A split date as UTC microseconds. The loader parses `split:` dates (spec/loader.py, located errors at
    `fpipe validate`) into UTC datetimes; a naive datetime from a caller of the API is read in `tz`."""
    if not isinstance(value, datetime):
        raise _bad(model, loc, f"model '{model}': split.{key} must be a datetime, got {value!r}", "load the model with load_definitions")
    dt = value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(tz))
    return int((dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1))


def boundaries(
    times_us: np.ndarray,
    split_cfg: Mapping[str, Any],
    model: str,
    tz: str = "UTC",
    loc: Location = NO_LOCATION,
    gap: timedelta = timedelta(0),
) -> tuple[int, int]:
    """(valid_start, test_start) in UTC microseconds, from dates or from fractions of rows in time order.

    Fractions are shares of the rows that are kept: test is the latest `test` share of all rows; valid
    is the latest `valid` share taken from the rows that end at least `gap` before test; train is what
    ends at least `gap` before valid. So the purge gaps lie between the parts instead of eating one."""
    unknown = [k for k in split_cfg if k not in SPLIT_KEYS]
    if unknown:
        raise _bad(model, loc, f"model '{model}': unknown split key '{unknown[0]}'", "allowed: " + ", ".join(SPLIT_KEYS))
    has_dates = "valid_start" in split_cfg or "test_start" in split_cfg
    if has_dates:
        if "valid_start" not in split_cfg or "test_start" not in split_cfg:
            raise _bad(model, loc, f"model '{model}': split needs both valid_start and test_start", "or give fractions")
        vs = _to_us(split_cfg["valid_start"], tz, model, "valid_start", loc)
        ts = _to_us(split_cfg["test_start"], tz, model, "test_start", loc)
        if ts <= vs:
            raise _bad(model, loc, f"model '{model}': split.test_start must be after split.valid_start", "swap them")
        return vs, ts
    fr = [float(split_cfg.get(k, d)) for k, d in zip(("train", "valid", "test"), DEFAULT_FRACTIONS, strict=True)]
    if any(f <= 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise _bad(
            model,
            loc,
            f"model '{model}': split fractions train/valid/test must be positive and sum to 1, got {fr}",
            "e.g. split: {train: 0.7, valid: 0.15, test: 0.15}",
        )
    ordered = np.sort(times_us)
    n = len(ordered)
    if n < 3:
        raise DataError(f"the training set has {n} rows; a time split needs more", hint="build it over a longer period")
    g = int(gap // timedelta(microseconds=1))
    n_test, n_valid = max(1, round(fr[2] * n)), max(1, round(fr[1] * n))
    test_start = int(ordered[n - n_test])
    pool = ordered[(ordered < test_start) & (ordered + g <= test_start)]  # labels end before test starts
    if len(pool) <= n_valid:
        return int(pool[0]) if len(pool) else test_start, test_start  # check_split reports the empty part
    return int(pool[len(pool) - n_valid]), test_start


def apply_split(
    times_us: np.ndarray,
    valid_start: int,
    test_start: int,
    gap: timedelta,
    train_start: int | None = None,
    test_end: int | None = None,
) -> Split:
    """Assign rows to parts by time and purge the rows within `gap` before each boundary."""
    g = int(gap // timedelta(microseconds=1))
    t = times_us
    in_range = np.ones(len(t), dtype=bool)
    if train_start is not None:
        in_range &= t >= train_start
    if test_end is not None:
        in_range &= t < test_end
    train_all = in_range & (t < valid_start)
    valid_all = in_range & (t >= valid_start) & (t < test_start)
    test = in_range & (t >= test_start)
    train = train_all & (t + g <= valid_start)
    valid = valid_all & (t + g <= test_start)
    return Split(
        train=np.flatnonzero(train),
        valid=np.flatnonzero(valid),
        test=np.flatnonzero(test),
        valid_start=valid_start,
        test_start=test_start,
        gap=gap,
        purged={"train": int(train_all.sum() - train.sum()), "valid": int(valid_all.sum() - valid.sum())},
    )


def check_split(split: Split, where: str) -> None:
    empty = [p for p, idx in (("train", split.train), ("valid", split.valid), ("test", split.test)) if len(idx) == 0]
    if empty:
        raise DataError(
            Diagnostic(
                f"the {' and '.join(empty)} part of the time split is empty "
                f"(valid from {iso(split.valid_start)}, test from {iso(split.test_start)}, gap {format_duration(split.gap)})",
                file=where,
                hint="move split.valid_start / split.test_start, or build the training set over a longer period",
            )
        )


def rolling_folds(times_us: np.ndarray, n_folds: int, gap: timedelta, valid_fraction: float = 0.2) -> list[Split]:
    """Rolling-origin backtest: rows in time order are cut into n+1 blocks; fold k trains on blocks < k
    (its latest `valid_fraction` as the early-stopping set) and tests on block k, with purge gaps."""
    ordered = np.sort(times_us)
    n = len(ordered)
    folds: list[Split] = []
    for k in range(1, n_folds + 1):
        origin = int(ordered[min(k * n // (n_folds + 1), n - 1)])
        end = int(ordered[(k + 1) * n // (n_folds + 1)]) if k < n_folds else None
        before = ordered[ordered + int(gap // timedelta(microseconds=1)) <= origin]
        if len(before) < 2:
            continue
        valid_start = int(before[int((1 - valid_fraction) * len(before))])
        folds.append(apply_split(times_us, valid_start, origin, gap, test_end=end))
    return folds
