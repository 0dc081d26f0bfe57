"""Serving logs: find, read and check the log of what a serving system served.

A serving log holds an optional row id, the entity keys, the request time and one column per served
feature, named as the feature or mapped with `columns:` (feature -> column) under `serving_logs:`.
Every mistake is a `DataError`/`UsageError` naming the file and the column (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from fpipe.errors import DataError, Diagnostic, UsageError
from fpipe.spec.model import Definitions, ServingLogSpec
from fpipe.spec.suggest import did_you_mean, one_of

DEFAULT_TIME = "served_at"
ROW_ID_NAMES = ("request_id", "row_id")


@dataclass
class ServedLog:
    frame: pl.DataFrame  # the log, served columns renamed to feature names, time as datetime[us, UTC]
    path: str  # for messages and reports
    time_col: str
    row_id: str | None
    keys: dict[str, tuple[str, ...]]  # entity -> key columns
    features: list[str]  # compared features, in the training set's (or definition) order
    training_set: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def key_columns(self) -> list[str]:
        return list(dict.fromkeys(c for cols in self.keys.values() for c in cols))


def choose_log(defs: Definitions, set_name: str | None, served: str | None) -> tuple[str | None, ServingLogSpec | None]:
    """The training set and the declared log to use, from the SET argument and --served."""
    if set_name is not None and set_name not in defs.training_sets:
        raise UsageError(
            Diagnostic(
                f"unknown training set '{set_name}'",
                hint=did_you_mean(set_name, defs.training_sets) or one_of(defs.training_sets),
            )
        )
    if set_name is not None:
        return set_name, defs.serving_logs.get(set_name)
    if served is None:
        if len(defs.serving_logs) == 1:
            name = next(iter(defs.serving_logs))
            return (name if name in defs.training_sets else None), defs.serving_logs[name]
        raise UsageError(
            Diagnostic(
                "no serving log given",
                hint="pass a training set declared under `serving_logs:` ("
                + (", ".join(sorted(defs.serving_logs)) or "none declared")
                + "), or --served FILE",
            )
        )
    return None, None


def load_served_log(
    defs: Definitions,
    set_name: str | None,
    served: str | None,
    *,
    time_col: str | None = None,
    row_id: str | None = None,
    ignore: Sequence[str] = (),
    only: Sequence[str] = (),
    key_dtypes: Callable[[list[str]], Mapping[str, Mapping[str, pl.DataType]]] | None = None,
) -> ServedLog:
    """Read and check a serving log. `key_dtypes(features)`: entity -> key column -> dtype in the sources."""
    from fpipe.engine.build import feature_closure
    from fpipe.engine.timecols import to_utc
    from fpipe.io.sources import display_path, read_frame
    from fpipe.io.urls import is_url

    set_name, spec = choose_log(defs, set_name, served)
    path = served or (spec.path if spec else None)
    if path is None:
        raise UsageError(
            Diagnostic(
                f"training set '{set_name}' has no serving log",
                hint="pass --served FILE, or declare one under `serving_logs:`",
            )
        )
    shown = display_path(path)
    if not is_url(path) and not Path(path).exists() and not any(ch in path for ch in "*?["):
        raise DataError(Diagnostic("no such file", file=shown, hint="check the path given to --served or `serving_logs:`"))
    fmt = spec.format if (spec and not served) else None
    frame = read_frame(path, None, fmt, what="serving log")
    if frame.height == 0:
        raise DataError(Diagnostic("the serving log is empty", file=shown, hint="nothing to compare: check the export"))

    time_col = time_col or (spec.time if spec else None) or DEFAULT_TIME
    if time_col not in frame.columns:
        temporal = [c for c, d in frame.schema.items() if d.is_temporal()]
        hint = did_you_mean(time_col, frame.columns)
        if hint is None:
            hint = (
                f"pass --time-col ({', '.join(temporal)} look like times)"
                if temporal
                else "the log needs the request time: pass --time-col, or set `time:` under `serving_logs:`"
            )
        raise DataError(Diagnostic(f"no time column '{time_col}'", file=shown, hint=hint))
    row_id = row_id or (spec.row_id if spec else None)
    if row_id is None:  # conventional names need no declaration
        row_id = next((c for c in ROW_ID_NAMES if c in frame.columns), None)
    if row_id is not None and row_id not in frame.columns:
        raise DataError(
            Diagnostic(f"no row id column '{row_id}'", file=shown, hint=did_you_mean(row_id, frame.columns) or "pass --row-id")
        )

    # which features: the training set's, or every defined one
    candidates = list(defs.training_sets[set_name].features) if set_name else list(defs.features)
    mapping = dict(spec.columns) if spec else {}
    col_to_feature = {col: feat for feat, col in mapping.items()}
    for f in candidates:
        col_to_feature.setdefault(f, f)
    for f in defs.features:  # a defined feature outside the set is still comparable
        col_to_feature.setdefault(f, f)

    # entities and their key columns, from the features the log serves
    served_cols = [c for c in frame.columns if c not in (time_col, row_id) and c not in ignore]
    entity_keys: dict[str, tuple[str, ...]] = {}
    for ent_name, ent_spec in defs.entities.items():
        entity_keys[ent_name] = tuple((spec.keys.get(ent_name) if spec else None) or ent_spec.keys)
    key_cols = {c for cols in entity_keys.values() for c in cols}
    features: list[str] = []
    notes: list[str] = []
    for c in served_cols:
        if c in key_cols and c not in col_to_feature:
            continue
        feat = col_to_feature.get(c)
        if feat is None:
            where = f"training set '{set_name}'" if set_name else "the definitions"
            hint = did_you_mean(c, [*candidates, *mapping.values()])
            raise DataError(
                Diagnostic(
                    f"column '{c}' matches no feature of {where}",
                    file=shown,
                    hint=(f"{hint} (or" if hint else "map it with")
                    + f" `columns:` under `serving_logs:`, or skip it with --ignore-column {c}"
                    + (")" if hint else ""),
                )
            )
        features.append(feat)
    if only:
        unknown = [f for f in only if f not in features]
        if unknown:
            raise UsageError(
                Diagnostic(f"feature '{unknown[0]}' is not served in {shown}", hint=did_you_mean(unknown[0], features) or one_of(features))
            )
        features = [f for f in features if f in only]
    if not features:
        raise DataError(Diagnostic("the serving log has no feature columns", file=shown, hint="columns: " + ", ".join(frame.columns)))
    if set_name:
        missing = [f for f in candidates if f not in features]
        if missing and not only:
            notes.append(f"not served, not compared: {', '.join(missing)}")
        order = {f: i for i, f in enumerate(candidates)}
        features.sort(key=lambda f: order.get(f, len(order)))

    needed = feature_closure(defs, features)
    entities = list(dict.fromkeys(defs.features[n].entity for n in needed if defs.features[n].entity))
    keys = {e: entity_keys[e] for e in entities if e is not None}
    dtypes = key_dtypes(features) if key_dtypes is not None else {}
    for ent, cols in keys.items():
        for col in cols:
            if col not in frame.columns:
                raise DataError(
                    Diagnostic(
                        f"no key column '{col}' (entity '{ent}')",
                        file=shown,
                        hint=did_you_mean(col, frame.columns) or f"map it with `keys: {{{ent}: [...]}}` under `serving_logs:`",
                    )
                )
            expected = dtypes.get(ent, {}).get(col)
            got = frame.schema[col]
            if expected is not None and not _compatible(got, expected):
                raise DataError(
                    Diagnostic(
                        f"key column '{col}' is {got}, but entity '{ent}' is keyed by {expected} in its sources",
                        file=shown,
                        hint=f"cast '{col}' to {expected} upstream: keys of different types never match",
                    )
                )
            if expected is not None and got != expected:
                frame = frame.with_columns(pl.col(col).cast(expected))
    rename = {c: col_to_feature[c] for c in served_cols if c in col_to_feature and col_to_feature[c] != c}
    if rename:
        frame = frame.rename(rename)
    tz = (spec.timezone if spec else None) or defs.timezone
    frame = to_utc(frame, time_col, tz=tz, where=shown)
    return ServedLog(frame, shown, time_col, row_id, keys, features, set_name, notes)


def _compatible(got: pl.DataType, expected: pl.DataType) -> bool:
    if got == expected or got == pl.Null:
        return True
    if got.is_integer() and expected.is_integer():
        return True
    strings = (pl.String, pl.Categorical)
    return any(got == s or isinstance(got, pl.Categorical) for s in strings) and (
        expected == pl.String or isinstance(expected, pl.Categorical)
    )
