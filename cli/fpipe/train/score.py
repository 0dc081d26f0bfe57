"""Batch scoring with a registered model: check the table against the model's feature contract, encode it
exactly as training did, predict, and keep the spine keys and time beside the predictions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fpipe.errors import DataError, Diagnostic
from fpipe.train.contract import check_frame, encode_features
from fpipe.train.registry import LoadedModel
from fpipe.train.trainer import DEFAULT_NTHREAD, predict

if TYPE_CHECKING:
    import polars as pl


def check_definitions(model: LoadedModel, manifest: Mapping[str, Any] | None, where: str) -> None:
    """Refuse a feature table built from feature definitions other than the model's (when both are known)."""
    if not manifest:
        return
    theirs = manifest.get("feature_definition_hashes") or {}
    ours = model.metadata.get("feature_definition_hashes") or {}
    changed = [f for f in ours if f in theirs and str(theirs[f]) != str(ours[f])]
    if changed:
        raise DataError(
            [
                Diagnostic(
                    f"feature '{f}' was built from a different definition than {model.name} {model.version} was trained on",
                    file=where,
                    hint="rebuild the table with the definitions the model was trained on, retrain the model, "
                    "or pass --ignore-definitions",
                )
                for f in changed
            ]
        )


def score_frame(
    model: LoadedModel, frame: pl.DataFrame, where: str, allow_unseen_categories: bool = False
) -> tuple[pl.DataFrame, list[str]]:
    """Predictions for every row of `frame`, with its spine key and time columns first; and warnings."""
    import polars as pl

    contract = model.contract
    warnings = check_frame(frame, contract, where, f"model '{model.name}' {model.version}", allow_unseen_categories)
    x = encode_features(frame, contract)
    pred = predict(model.booster, x, contract, int(model.metadata["params"].get("nthread", DEFAULT_NTHREAD)))
    spine = model.metadata["spine"]
    keep = [c for c in [*spine["key_columns"], spine["time_column"]] if c in frame.columns]
    out = frame.select(keep)
    kind = model.metadata["kind"]
    if kind == "multiclass":
        classes = model.metadata["label"]["classes"]
        out = out.with_columns(pl.Series("prediction", [classes[i] for i in np.argmax(pred, axis=1)], dtype=pl.String))
        out = out.with_columns([pl.Series(f"proba_{c}", pred[:, i]) for i, c in enumerate(classes)])
    else:
        out = out.with_columns(pl.Series("prediction", pred.astype(np.float64)))
    return out, warnings
