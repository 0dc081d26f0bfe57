"""Export a trained model as a new immutable version: model.ubj, metadata.json, model_card.md, SVG plots.

This module builds the files' content; io/models.py writes them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fpipe.io.models import write_version
from fpipe.render import plots
from fpipe.render.model_card import render_model_card
from fpipe.spec.model import ModelSpec
from fpipe.train import metrics as M
from fpipe.train.registry import METADATA_FILE, MODEL_FILE, _now, dumps
from fpipe.train.trainer import TrainedModel, definitions_hash, versions

BASELINE_TEXT = {
    "binary": "every row scored with the positive rate of the training period",
    "regression": "every row predicted as the mean label of the training period",
    "multiclass": "every row scored with the class shares of the training period",
}


def build_metadata(
    trained: TrainedModel,
    spec: ModelSpec,
    *,
    version: str,
    training_set: str,
    spine_time_col: str,
    key_columns: Sequence[str],
    label: str,
    label_dtype: str,
    manifest: Mapping[str, Any] | None,
    timezone: str = "UTC",
) -> dict[str, Any]:
    features = [c.name for c in trained.contract]
    defs_hash, per_feature = definitions_hash(manifest, features)
    return {
        "format": "fpipe-model/1",
        "model": trained.name,
        "version": version,
        "created_at": _now(),
        "engine": trained.engine,
        "engine_info": trained.engine_info,
        "objective": trained.params["objective"],
        "kind": trained.kind,
        "label": {"name": label, "dtype": label_dtype, "classes": trained.classes},
        "training_set": training_set,
        "spine": {"time_column": spine_time_col, "key_columns": list(key_columns)},
        "timezone": timezone,
        "features": [c.to_json() for c in trained.contract],
        "feature_definitions_hash": defs_hash,
        "feature_definition_hashes": per_feature,
        "training_set_manifest": dict(manifest) if manifest is not None else None,
        "split": trained.split,
        "params": trained.params,
        "num_boost_round": spec.num_boost_round,
        "early_stopping_rounds": spec.early_stopping_rounds,
        "best_iteration": trained.best_iteration,
        "metrics": {
            "primary_metric": M.PRIMARY_METRIC[trained.kind],
            "test": trained.metrics,
            "baseline": trained.baseline,
            "baseline_description": BASELINE_TEXT[trained.kind],
            "beats_baseline": trained.beats_baseline,
            "gates": dict(spec.gates),
            "gate_failures": trained.gate_failures,
            "calibration": trained.calibration,
        },
        "single_feature": trained.single_feature,
        "importance": trained.importance,
        "folds": trained.folds,
        "warnings": trained.warnings,
        "model_file": MODEL_FILE,
        "model_sha256": hashlib.sha256(trained.model_bytes).hexdigest(),
        "versions": versions(),
    }


def make_plots(trained: TrainedModel) -> dict[str, str]:
    """file name -> SVG text."""
    out = {"importance.svg": plots.importance_svg(trained.importance)}
    y, p = trained.y_test, trained.pred_test
    if y is None or p is None or len(y) == 0:
        return out
    if trained.kind == "binary" and len(np.unique(y)) == 2:
        fpr, tpr = M.roc_curve(y, p)
        recall, precision = M.pr_curve(y, p)
        out["roc.svg"] = plots.roc_svg(fpr, tpr, trained.metrics["auc"])
        out["pr.svg"] = plots.pr_svg(recall, precision, trained.metrics["pr_auc"], float(np.mean(y)))
        out["calibration.svg"] = plots.calibration_svg(trained.calibration)
    elif trained.kind == "regression":
        out["predicted_vs_actual.svg"] = plots.scatter_svg(y, p)
    order = ["roc.svg", "pr.svg", "calibration.svg", "predicted_vs_actual.svg", "importance.svg"]
    return {name: out[name] for name in order if name in out}


def model_files(
    trained: TrainedModel, spec: ModelSpec, svgs: Mapping[str, str], version: str, **meta_args: Any
) -> tuple[dict[str, bytes | str], dict[str, Any]]:
    """The files of one version (file name -> bytes or text) and its metadata."""
    meta = build_metadata(trained, spec, version=version, **meta_args)
    meta["plots"] = list(svgs)
    files: dict[str, bytes | str] = {
        MODEL_FILE: trained.model_bytes,
        METADATA_FILE: dumps(meta),
        "model_card.md": render_model_card(meta, list(svgs)),
        **svgs,
    }
    return files, meta


def export_model(models_dir: Path, trained: TrainedModel, spec: ModelSpec, **meta_args: Any) -> tuple[str, Path, dict[str, Any]]:
    """Write the next version of the model (through io/models.py); returns (version, directory, metadata)."""
    svgs = make_plots(trained)
    metas: dict[str, dict[str, Any]] = {}

    def files_for(version: str) -> dict[str, bytes | str]:
        files, metas[version] = model_files(trained, spec, svgs, version, **meta_args)
        return files

    version, path = write_version(models_dir, trained.name, files_for)
    return version, path, metas[version]
