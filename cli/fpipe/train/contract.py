"""The feature contract of a model: ordered features, their types and category mappings.

Training derives it from the training split (`contract_from_frame`), stores it in metadata.json, and
both training and scoring encode frames through the same `encode_features`, so a category unseen at
training becomes a missing value in exactly the same way in both. `check_frame` refuses a table whose
columns are missing, renamed, retyped, or whose categories do not match the model's.

Kinds: integer, float, boolean (0/1), categorical (String/Categorical/Enum -> sorted codes), duration
(seconds), datetime (epoch seconds), null (every training value missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fpipe.errors import DataError, Diagnostic
from fpipe.spec.suggest import closest

if TYPE_CHECKING:
    import polars as pl

# an input column whose non-null values are at least this share of unseen categories is refused
UNSEEN_CATEGORY_LIMIT = 0.5


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    dtype: str  # polars dtype at training, e.g. "Float64"
    kind: str  # integer | float | boolean | categorical | duration | datetime | null
    categories: tuple[str, ...] | None = None  # categorical only: sorted; code = index
    default: Any = None  # the definition's default (informational: the training set already applied it)

    @property
    def xgb_type(self) -> str:
        return "c" if self.kind == "categorical" else "q"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "kind": self.kind}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        out["default"] = self.default
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> FeatureColumn:
        cats = d.get("categories")
        return FeatureColumn(
            name=str(d["name"]),
            dtype=str(d["dtype"]),
            kind=str(d["kind"]),
            categories=tuple(str(c) for c in cats) if cats is not None else None,
            default=d.get("default"),
        )


def dtype_kind(dtype: pl.DataType) -> str | None:
    """The contract kind of a polars dtype; None when XGBoost cannot take it (lists, structs, ...)."""
    import polars as pl

    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float() or isinstance(dtype, pl.Decimal):
        return "float"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
        return "categorical"
    if isinstance(dtype, pl.Duration):
        return "duration"
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return "datetime"
    if dtype == pl.Null:
        return "null"
    return None


def _dtype_name(dtype: pl.DataType) -> str:
    return str(dtype)


def contract_from_frame(
    frame: pl.DataFrame, features: Sequence[str], defaults: Mapping[str, Any] | None = None, where: str = "training set"
) -> list[FeatureColumn]:
    """The contract of `features` as they are in `frame` (the training split: categories seen there)."""
    import polars as pl

    defaults = defaults or {}
    problems: list[Diagnostic] = []
    out: list[FeatureColumn] = []
    for name in features:
        if name not in frame.columns:
            problems.append(Diagnostic(f"column '{name}' is missing", file=where, hint=_missing_hint(name, frame.columns)))
            continue
        dtype = frame.schema[name]
        kind = dtype_kind(dtype)
        if kind is None:
            problems.append(
                Diagnostic(
                    f"feature '{name}' is {_dtype_name(dtype)}; XGBoost takes only scalar features",
                    file=where,
                    hint="leave it out with `features:` on the model, or derive a scalar from it",
                )
            )
            continue
        cats: tuple[str, ...] | None = None
        if kind == "categorical":
            values = frame.get_column(name).cast(pl.String).drop_nulls().unique().sort()
            cats = tuple(values.to_list())
        out.append(FeatureColumn(name, _dtype_name(dtype), kind, cats, _jsonable(defaults.get(name))))
    if problems:
        raise DataError(problems)
    return out


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def encode_features(frame: pl.DataFrame, contract: Sequence[FeatureColumn]) -> np.ndarray:
    """A float64 matrix (rows x features, contract order); missing and unseen categories are NaN."""
    import polars as pl

    n = frame.height
    out = np.empty((n, len(contract)), dtype=np.float64)
    for j, col in enumerate(contract):
        s = frame.get_column(col.name)
        if s.dtype == pl.Null:
            out[:, j] = np.nan
            continue
        if col.kind == "categorical":
            mapping = {c: i for i, c in enumerate(col.categories or ())}
            codes = s.cast(pl.String).replace_strict(mapping, default=None, return_dtype=pl.Float64)
            out[:, j] = codes.fill_null(np.nan).to_numpy()
        elif col.kind == "duration":
            out[:, j] = (s.dt.total_microseconds().cast(pl.Float64) / 1e6).fill_null(np.nan).to_numpy()
        elif col.kind == "datetime":
            out[:, j] = (s.dt.epoch("us").cast(pl.Float64) / 1e6).fill_null(np.nan).to_numpy()
        else:
            out[:, j] = s.cast(pl.Float64).fill_null(np.nan).fill_nan(np.nan).to_numpy()
    return out


def _missing_hint(name: str, columns: Sequence[str], expected: Sequence[str] = ()) -> str:
    extra = [c for c in columns if c not in set(expected)]
    best = closest(name, extra)
    if best is None:  # a renamed column often keeps the old name inside the new one (`amount` -> `amount_usd`)
        inside = sorted((c for c in extra if name.lower() in c.lower() or c.lower() in name.lower()), key=len)
        best = inside[0] if inside else None
    if best is not None:
        return f"did you mean '{best}'? rename it back to '{name}', as the model was trained"
    if len(expected) > 6:
        return f"the model needs all {len(expected)} of its features under their training names (see its metadata.json)"
    return f"the model needs its features under their training names: {', '.join(expected) or name}"


def check_frame(
    frame: pl.DataFrame,
    contract: Sequence[FeatureColumn],
    where: str,
    model: str,
    allow_unseen_categories: bool = False,
) -> list[str]:
    """Refuse (DataError, every problem at once) a frame that breaks the contract; returns warnings."""
    import polars as pl

    problems: list[Diagnostic] = []
    warnings: list[str] = []
    expected = [c.name for c in contract]
    for col in contract:
        if col.name not in frame.columns:
            problems.append(
                Diagnostic(
                    f"column '{col.name}' is missing; {model} needs it ({col.dtype})",
                    file=where,
                    hint=_missing_hint(col.name, frame.columns, expected),
                )
            )
            continue
        dtype = frame.schema[col.name]
        kind = dtype_kind(dtype)
        if kind == "null" or col.kind == "null":
            continue  # every value missing: nothing to mis-encode
        if kind != col.kind and not (kind == "integer" and col.kind == "float"):  # ints widen to floats losslessly
            problems.append(
                Diagnostic(
                    f"column '{col.name}' is {_dtype_name(dtype)}, {model} expects {col.dtype} ({col.kind})",
                    file=where,
                    hint=f"cast '{col.name}' to {col.dtype} upstream, or retrain the model on the new type",
                )
            )
            continue
        if col.kind == "categorical":
            seen = set(col.categories or ())
            values = frame.get_column(col.name).cast(pl.String).drop_nulls()
            if values.len() == 0:
                continue
            unseen_mask = ~values.is_in(list(seen)) if seen else pl.Series([True] * values.len())
            n_unseen = int(unseen_mask.sum())
            if n_unseen == 0:
                continue
            share = n_unseen / values.len()
            examples = values.filter(unseen_mask).unique().sort().head(3).to_list()
            shown = ", ".join(f"'{e}'" for e in examples)
            trained = ", ".join(f"'{c}'" for c in (col.categories or ())[:5])
            if share >= UNSEEN_CATEGORY_LIMIT and not allow_unseen_categories:
                problems.append(
                    Diagnostic(
                        f"column '{col.name}': {share:.0%} of values are categories {model} never saw (e.g. {shown})",
                        file=where,
                        hint=f"it was trained on {trained or 'no categories'}; fix the encoding upstream, "
                        "or pass --allow-unseen-categories to score them as missing",
                    )
                )
            else:
                warnings.append(
                    f"column '{col.name}': {n_unseen} values ({share:.1%}) are categories the model never saw "
                    f"(e.g. {shown}); they score as missing, as in training"
                )
    if problems:
        raise DataError(problems)
    return warnings
